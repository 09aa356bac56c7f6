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


def test_bench_actor_times_a_model_with_best_of_n(tmp_path, capsys):
    import torch

    from policies import PolicySpec
    from policies.bc import ShortcutBCPolicy
    from policies.configs import BCPolicyConfig, CriticConfig
    from policies.critics import CriticEnsemble
    from policies.policy_files import save_critic, save_policy
    from policies.sac import make_encoder
    from policies.verifier import CriticVerifier

    spec = PolicySpec(state_dim=17, action_dim=4)  # PegInsert's
    save_policy(tmp_path / "m.pt", ShortcutBCPolicy.build(spec, BCPolicyConfig(hidden=(8,))), {})
    config = CriticConfig(hidden=(8,), critics=2)
    encoder = make_encoder(spec, config, torch.device("cpu"))
    digest = save_critic(
        tmp_path / "critic.pt", CriticVerifier(spec, config, encoder, CriticEnsemble(17, 4, (8,), 2)), {}
    )
    argv = ["bench", "actor", "--task", "PegInsert", "--policy", str(tmp_path / "m.pt"), "--steps", "20"]
    assert (
        main(
            [
                *argv,
                "--sample-steps",
                "2",
                "--best-of",
                "4",
                "--critic",
                str(tmp_path / "critic.pt"),
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert (result["obs"], result["kind"], result["best_of"], result["critic_hash"]) == (
        "state", "bc-shortcut", 4, digest
    )  # fmt: skip
    assert result["encoder"] is None and 0 < result["policy_p50_ms"] <= result["policy_p99_ms"]
    assert main([*argv[:4], "--best-of", "4"]) == 2
    assert "time a --policy MODEL" in capsys.readouterr().err
