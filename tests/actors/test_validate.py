"""`realrl validate`: the design's JSON, an exit status that follows the thresholds given, the report,
and a run's checkpoint validated through the policy file the checkpoint holds."""

import json

import pytest
import torch

from learner.configs import SACConfig, TrainConfig
from realrl.cli import main

FIGURES = {"episodes", "success_rate", "violations", "violation_episodes", "mean_return", "p99_step_ms"}


def run(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("{")]
    return code, json.loads(lines[-1]) if lines else None, captured.err


def test_the_exit_status_follows_the_thresholds(tmp_path, capsys):
    report = tmp_path / "scripted.png"
    base = ["validate", "--task", "PegInsert", "--episodes", "4", "--json", "--report", str(report)]
    code, scripted, _ = run(capsys, *base, "--policy", "scripted", "--min-success", "1.0")
    assert set(scripted) >= FIGURES and scripted["episodes"] == 4
    assert scripted["success_rate"] == 1.0 and scripted["mean_return"] == 1.0 and code == 0
    assert scripted["passed"] and scripted["thresholds_failed"] == [] and report.stat().st_size > 10_000

    code, random, err = run(capsys, *base, "--policy", "random", "--min-success", "0.5")
    assert random["success_rate"] < 0.5 and code == 1 and not random["passed"]
    assert f"threshold missed: success_rate {random['success_rate']} < --min-success 0.5" in err
    code, same, _ = run(capsys, *base, "--policy", "random")  # no threshold: nothing to miss
    assert code == 0 and same["success_rate"] == random["success_rate"]  # the same seeded episodes


def test_bad_input_is_one_error_line(tmp_path, capsys):
    code, _, err = run(capsys, "validate", "--task", "PegInsert")
    assert code == 2 and "give one of --policy MODEL|random|scripted and --checkpoint RUN_DIR" in err
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    code, _, err = run(capsys, "validate", "--task", "PegInsert", "--policy", str(tmp_path / "junk.pt"))
    assert code == 2 and "junk.pt: not a readable realrl policy file" in err
    code, _, err = run(capsys, "validate", "--task", "PegInsert", "--checkpoint", str(tmp_path))
    assert code == 2 and "checkpoints/latest/policy.pt" in err
    code, _, err = run(capsys, "validate", "--task", "PegInsert", "--policy", "random", "--best-of", "4")
    assert code == 2 and "--best-of needs a critic" in err
    code, _, err = run(
        capsys, "validate", "--task", "PegInsert", "--policy", "scripted", "--critic", str(tmp_path)
    )
    assert code == 2 and "--critic ranks the candidates of --best-of N" in err
    code, _, err = run(
        capsys,
        "validate",
        "--task",
        "PegInsert",
        "--policy",
        "random",
        "--best-of",
        "4",
        "--critic",
        str(tmp_path),
    )
    assert code == 2 and "the random policy has no candidates to rank" in err


def test_a_runs_checkpoint_validates_with_the_policy_it_trained(tmp_path, capsys):
    from policies.policy_files import load_critic, load_policy
    from realrl.commands.train import build_loop

    out = tmp_path / "run"
    config = TrainConfig(
        task="PickCube", steps=60, demo_episodes=2, learning_starts=50, batch_size=32, eval_every=100,
        eval_episodes=1, agent=SACConfig(hidden=(32, 32), critics=2),
    )  # fmt: skip
    loop = build_loop(config, out, progress=False)
    loop.run()
    model = load_policy(out / "checkpoints" / "latest" / "policy.pt")
    assert model.info["env_steps"] == 60 and model.info["updates"] == loop.updates
    for name, value in loop.algorithm.policy.state_dict().items():
        assert torch.equal(model.policy.state_dict()[name], value), name
    code, validated, err = run(
        capsys, "validate", "--task", "PickCube", "--checkpoint", str(out), "--episodes", "1", "--json"
    )
    assert code == 0, err
    assert validated["kind"] == "sac" and validated["model_hash"] == model.hash
    assert validated["report"] == str(out / "validate.png") and (out / "validate.png").exists()
    assert 0 < validated["p50_policy_ms"] <= validated["p50_step_ms"]  # the decision is part of a step

    # The checkpoint's critic is the run's ensemble and encoder: same scores as the algorithm's.
    critic = load_critic(out / "checkpoints" / "latest" / "critic.pt")
    generator = torch.Generator().manual_seed(0)
    state = torch.randn(4, model.policy.spec.state_dim, generator=generator)
    actions = torch.rand(4, 3, 4, generator=generator) * 2 - 1
    algorithm = loop.algorithm
    with torch.no_grad():
        q = algorithm.critic(algorithm.encoder(state).repeat_interleave(3, 0), actions.reshape(12, 4))
    torch.testing.assert_close(critic.critic.scores(state, {}, actions), q.mean(0).reshape(4, 3))
    code, best, err = run(
        capsys, "validate", "--task", "PickCube", "--checkpoint", str(out), "--episodes", "1", "--json",
        "--best-of", "4",
    )  # fmt: skip
    assert code == 0, err
    assert best["best_of"] == 4 and best["critic_hash"] == critic.hash
    # Policy and critic come from one checkpoint: the directory `latest` pointed to, resolved once.
    step = (out / "checkpoints" / "latest").resolve()
    assert best["policy"] == str(step / "policy.pt") and best["critic"] == str(step / "critic.pt")


@pytest.mark.parametrize("steps", ["3", "16"])
def test_sample_steps_outside_the_shortcut_models_are_refused(tmp_path, capsys, steps):
    from policies import PolicySpec
    from policies.bc import ShortcutBCPolicy
    from policies.configs import BCPolicyConfig
    from policies.policy_files import save_policy

    save_policy(tmp_path / "m.pt", ShortcutBCPolicy.build(PolicySpec(17, 4), BCPolicyConfig(hidden=(8,))), {})
    code, _, err = run(
        capsys, "validate", "--task", "PegInsert", "--policy", str(tmp_path / "m.pt"), "--sample-steps", steps
    )
    assert code == 2 and "sample_steps" in err
