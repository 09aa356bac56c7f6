"""`realrl bench learner`: the JSON contract, shape overrides, and a clock that agrees with itself
(checked on a fake clock: a real one on a loaded machine measures the load)."""

import json
from types import SimpleNamespace

import pytest
import torch

from benchmarks import timing
from realrl.cli import main


def test_bench_learner_json_contract_and_shape_overrides(capsys):
    code = main(
        ["bench", "learner", "--state-dim", "7", "--action-dim", "3", "--critics", "3", "--batch", "16"]
        + ["--seconds", "0.3", "--json"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert {"updates_per_s", "ms_per_update", "peak_mem_mb", "device"} <= set(result)
    assert (result["state_dim"], result["action_dim"], result["critics"], result["batch"]) == (7, 3, 3, 16)
    assert result["device"] == "cpu" and result["obs"] == "state" and result["cameras"] == 0
    assert result["updates_per_s"] > 0 and result["peak_mem_mb"] > 50
    # At least half the chunks take the median time or longer, so the rate over the window is at most
    # twice the median's (a stall on a loaded machine only lowers it; see the fake clock below).
    implied = 1000 / result["ms_per_update"]
    assert result["updates_per_s"] < implied * 3


def test_timed_rate_on_a_fake_clock(monkeypatch):
    """Chunks of 2 updates for at least 10 ms: two chunks of 1 ms per update, then one stalled at
    6 ms per update. The window's rate counts the stall (6 updates in 16 ms), the median does not."""
    now = [0.0]
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    costs_ms = [1, 1, 1, 1, 6, 6]

    def step() -> None:
        now[0] += costs_ms.pop(0) / 1000

    updates_per_s, ms_per_update = timing.timed_rate(step, torch.device("cpu"), seconds=0.010, chunk=2)
    assert costs_ms == []  # the third chunk ended the 10 ms window
    assert updates_per_s == pytest.approx(6 / 0.016) and ms_per_update == pytest.approx(1.0)


def test_bench_learner_takes_shapes_from_the_task_and_times_pixels(capsys):
    code = main(
        ["bench", "learner", "--task", "PegInsert", "--obs", "pixels", "--image-size", "32", "--batch", "4"]
        + ["--critics", "2", "--seconds", "0.2", "--json"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    # PegInsert in pixels mode: proprioception only (7; the peg and hole poses are left to the cameras).
    assert (result["state_dim"], result["action_dim"], result["cameras"]) == (7, 4, 2)
    # auto, as `realrl train` ships it: on this CPU the frozen frame trunk with cached maps.
    assert result["encoder"] == "pretrained" and result["cached_maps"] and result["image_size"] == 32


def test_bench_learner_rejects_bad_shapes(capsys):
    assert main(["bench", "learner", "--batch", "0", "--seconds", "0.1"]) == 2
    assert "--batch must be >= 1" in capsys.readouterr().err


def test_bench_learner_at_utd_counts_critic_updates(capsys):
    code = main(
        ["bench", "learner", "--critics", "2", "--batch", "8", "--utd", "4", "--seconds", "0.3", "--json"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["utd"] == 4
    # A learn step makes 4 critic updates and serves one env step.
    assert result["updates_per_s"] == pytest.approx(4 * result["env_steps_per_s"], rel=0.01)


def test_bench_learner_with_a_frozen_encoder_reads_cached_maps(capsys):
    code = main(
        ["bench", "learner", "--obs", "pixels", "--encoder", "pretrained", "--image-size", "32"]
        + ["--batch", "8", "--critics", "2", "--seconds", "0.2", "--json"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["encoder"] == "pretrained" and result["cached_maps"] is True
    assert result["cameras"] == 2 and result["updates_per_s"] > 0
