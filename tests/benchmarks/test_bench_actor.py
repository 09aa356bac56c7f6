"""`realrl bench actor`: the JSON contract, and percentiles that agree with each other (a step holds
its decision, so it is never the shorter; p99 is never below p50)."""

import json

from realrl.cli import main


def test_bench_actor_json_contract(capsys):
    argv = ["bench", "actor", "--task", "PickCube", "--image-size", "32", "--steps", "40", "--warmup", "5"]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["encoder"], result["cameras"], result["image_size"]) == (
        "pretrained",
        ["front", "wrist"],
        32,
    )
    assert result["steps"] == 40 and result["torch_threads"] == 1
    assert 0 < result["policy_p50_ms"] <= result["policy_p99_ms"]
    assert result["policy_p50_ms"] <= result["step_p50_ms"] <= result["step_p99_ms"]


def test_bench_actor_refuses_a_model_that_does_not_fit(tmp_path, capsys):
    from policies.encoder_files import save_encoder_model
    from policies.encoders import FrameTrunk

    model = tmp_path / "enc.pt"
    save_encoder_model(model, FrameTrunk(64), ("front", "wrist"), {})
    argv = ["bench", "actor", "--image-size", "32", "--steps", "10", "--encoder", f"pretrained:{model}"]
    assert main(argv) == 2
    assert "at 64x64, but the task gives cameras ['front', 'wrist'] at 32x32" in capsys.readouterr().err
