"""`realrl bench learner`: the JSON contract, shape overrides, and a clock that agrees with itself."""

import json

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
    # The rate over the window and the median chunk time describe the same loop (within 3x: noise).
    implied = 1000 / result["ms_per_update"]
    assert implied / 3 < result["updates_per_s"] < implied * 3


def test_bench_learner_takes_shapes_from_the_task_and_times_pixels(capsys):
    code = main(
        ["bench", "learner", "--task", "PegInsert", "--obs", "pixels", "--image-size", "32", "--batch", "4"]
        + ["--critics", "2", "--seconds", "0.2", "--json"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    # PegInsert in pixels mode: proprioception only (7; the peg and hole poses are left to the cameras).
    assert (result["state_dim"], result["action_dim"], result["cameras"]) == (7, 4, 2)
    assert result["encoder"] == "conv" and result["image_size"] == 32


def test_bench_learner_rejects_bad_shapes(capsys):
    assert main(["bench", "learner", "--batch", "0", "--seconds", "0.1"]) == 2
    assert "must be positive" in capsys.readouterr().err
