"""`realrl bench residual`'s bookkeeping: first-reach steps, the ratio of the medians against the 0.5
bar on hand-written eval rows, and one tiny end-to-end benchmark through the real commands (demos ->
BC base -> validate -> residual and RLPD runs) that is read back, not redone, when run again, and
refused when run again with other settings."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace

import pytest

from benchmarks import residual
from benchmarks.configs import BenchResidualConfig

BASE = {"success_rate": 0.66, "success_ci": [0.52, 0.78], "episodes": 50, "model_hash": "abc"}


def write_run(run, points) -> None:
    run.mkdir(parents=True)
    rows = [{"env_steps": s, "success_rate": v, "eval_return": v} for s, v in points]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_ratio_of_the_medians_of_first_reach(tmp_path):
    write_run(tmp_path / "r0", [(1000, 0.7), (8000, 0.95), (9000, 0.85)])
    write_run(tmp_path / "r1", [(1000, 0.6), (10000, 0.9)])
    write_run(tmp_path / "p0", [(1000, 0.0), (22000, 0.9)])
    write_run(tmp_path / "p1", [(1000, 0.0), (24000, 1.0), (25000, 0.95)])
    runs = {"residual": [tmp_path / "r0", tmp_path / "r1"], "rlpd": [tmp_path / "p0", tmp_path / "p1"]}
    report = residual.summarize(BenchResidualConfig(seeds=2), BASE, runs)
    assert report["methods"]["residual"]["first_reach_steps"] == [8000, 10000]
    assert report["methods"]["residual"]["median_first_reach"] == 9000
    assert report["methods"]["rlpd"]["median_first_reach"] == 23000
    assert report["methods"]["rlpd"]["final_success"] == [0.9, 0.95]
    assert report["ratio"] == round(9000 / 23000, 3) == 0.391 and report["met"]
    assert report["base"]["success_rate"] == 0.66 and "0.39x RLPD's env steps" in report["verdict"]

    write_run(tmp_path / "p2", [(1000, 0.0), (25000, 0.85)])  # RLPD never reaches 90%
    runs["rlpd"][1] = tmp_path / "p2"
    report = residual.summarize(BenchResidualConfig(seeds=2), BASE, runs)
    assert report["ratio"] is None and not report["met"]
    assert report["verdict"] == "RLPD did not reach 90% within 25000 steps on every seed"
    assert "median 9000" in residual.table(report)


def test_a_tiny_benchmark_runs_end_to_end_then_reads_back(tmp_path, monkeypatch):
    config = BenchResidualConfig(
        demos=2, base_steps=20, validate_episodes=2, steps=300, seeds=1, eval_every=150, eval_episodes=1,
        out=str(tmp_path), base_sample_steps=1,
    )  # fmt: skip
    small = {"learning_starts": 100, "agent.hidden": 16, "agent.critics": 2, "critic_warmup": 0}
    report = residual.run(config, progress=False, extra_flags=small)
    assert report["base"]["episodes"] == 2 and report["base"]["policy"] == "shortcut"
    for name in ("residual", "rlpd"):
        (curve,) = report["methods"][name]["curves"]
        assert [step for step, _ in curve] == [150, 300]
        assert all(value in (0.0, 1.0) for _, value in curve)  # one eval episode each
    run_config = json.loads((tmp_path / "residual" / "seed0" / "config.json").read_text())
    assert run_config["residual"] and run_config["base_policy"] == str(tmp_path / "base.pt")
    assert run_config["residual_scale"] == 0.2 and run_config["demos"] == str(tmp_path / "demos")
    rlpd_config = json.loads((tmp_path / "rlpd" / "seed0" / "config.json").read_text())
    assert not rlpd_config["residual"] and rlpd_config["demos"] == run_config["demos"]
    assert (tmp_path / "residual.png").stat().st_size > 0
    assert json.loads((tmp_path / "residual.json").read_text())["methods"] == report["methods"]

    calls = []
    monkeypatch.setattr(subprocess, "call", lambda argv, **kw: calls.append(argv) or 0)
    again = residual.run(config, progress=False, extra_flags=small)
    assert calls == [] and again["methods"] == report["methods"]  # everything read back
    other = replace(config, residual_scale=0.1, demos=3)
    with pytest.raises(
        ValueError, match=r"--demos \(saved 2, given 3\), --residual-scale \(saved 0.2, given 0.1\)"
    ):
        residual.run(other, progress=False)
    assert calls == []
