"""`realrl train --residual --base-policy MODEL` (in-process actor): the replay holds the base's
action at every observation (online steps, final observations and relabelled demos), the run's
checkpoint holds the residual named by its base's hash, and the flags that do not go together are
refused before anything is built."""

import json
import shutil
from dataclasses import replace

import pytest
import torch

from actors.demos import record_scripted
from formats.config import load_config
from learner.configs import SACConfig, TrainConfig
from policies import PolicySpec
from policies.bc import GaussianBCPolicy
from policies.configs import BCPolicyConfig
from policies.policy_files import load_critic, load_policy, save_policy
from realrl.cli import main
from realrl.commands.train import build_loop


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two PegInsert demos and a stateless base (a Gaussian BC policy, random weights, its state
    normalisation fitted to the task's scale)."""
    root = tmp_path_factory.mktemp("residual")
    record_scripted(
        "PegInsert", 2, root / "demos", seed=5, obs_mode="state", successes_only=True, progress=False
    )
    base = GaussianBCPolicy.build(PolicySpec(17, 4), BCPolicyConfig(hidden=(16,)), seed=2)
    base.encoder.fit_state_normalizer(torch.randn(50, 17) * 0.1)
    digest = save_policy(root / "base.pt", base, {})
    return root, digest


def config(root, steps: int) -> TrainConfig:
    return TrainConfig(
        task="PegInsert", steps=steps, demos=str(root / "demos"), residual=True,
        base_policy=str(root / "base.pt"), residual_scale=0.2, learning_starts=20, batch_size=32,
        eval_every=1000, eval_episodes=1, log_every=50, checkpoint_every=1000,
        agent=SACConfig(hidden=(32, 32), critics=2),
    )  # fmt: skip


def test_the_replay_holds_the_bases_action_at_every_observation(setup, tmp_path):
    root, digest = setup
    loop = build_loop(config(root, 120), tmp_path / "run", progress=False)
    summary = loop.run()
    assert summary["env_steps"] == 120
    base = load_policy(root / "base.pt").policy
    for buffer in (loop.replay.online, loop.replay.demo):
        assert buffer.base_action_dim == 4
        batch = buffer.sample(256)
        with torch.no_grad():  # the base is stateless: its action is a function of the observation
            expected = base.act_batch(batch.state, {}, deterministic=True)
            expected_next = base.act_batch(batch.next_state, {}, deterministic=True)
        torch.testing.assert_close(batch.base_action, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(batch.next_base_action, expected_next, rtol=1e-5, atol=1e-6)
        # Executed actions stay within the residual's reach of the base's (or on the bound).
        gap = (batch.action - batch.base_action).abs()
        if buffer is loop.replay.online:
            assert float(gap.max()) <= 0.2 + 1e-5
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["base_policy_hash"] == digest and saved["base_policy"] == str((root / "base.pt").resolve())
    policy = load_policy(tmp_path / "run" / "checkpoints" / "latest" / "policy.pt").policy
    assert policy.kind == "residual" and policy.config.base_hash == digest
    # Its critic scores executed actions, as the run's critics do.
    critic = load_critic(tmp_path / "run" / "checkpoints" / "latest" / "critic.pt").critic
    batch = loop.replay.online.sample(8)
    with torch.no_grad():
        q = loop.algorithm.critic(loop.algorithm.encoder(batch.state), batch.action).mean(0)
    torch.testing.assert_close(critic.scores(batch.state, {}, batch.action.unsqueeze(1))[:, 0], q)


def test_a_resume_over_another_base_is_refused(setup, tmp_path):
    root, digest = setup
    out = tmp_path / "run"
    build_loop(config(root, 40), out, progress=False).run()
    other = tmp_path / "base.pt"
    shutil.copy(root / "base.pt", other)
    save_policy(root / "base.pt", GaussianBCPolicy.build(PolicySpec(17, 4), BCPolicyConfig(hidden=(16,))), {})
    try:
        saved = replace(load_config(TrainConfig, out / "config.json"), steps=60)  # as --resume --steps 60
        with pytest.raises(ValueError, match=f"this residual was trained over base {digest}"):
            build_loop(saved, out, resume=True, progress=False)
        with pytest.raises(ValueError, match=r"--resume cannot change --base-policy-hash"):
            build_loop(replace(saved, base_policy_hash="0123456789abcdef"), out, resume=True, progress=False)
    finally:
        shutil.copy(other, root / "base.pt")  # the module's base back for the other tests


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--residual"], "--residual and --base-policy MODEL go together"),
        (["--base-policy", "BASE"], "--residual and --base-policy MODEL go together"),
        (["--residual", "--base-policy", "BASE", "--algorithm", "hybrid-gripper"], "no residual variant"),
    ],
)
def test_flags_that_do_not_go_together_are_one_error_line(setup, tmp_path, capsys, flags, message):
    root, _ = setup
    argv = ["train", "--task", "PegInsert", "--out", str(tmp_path / "run")]
    code = main(argv + [str(root / "base.pt") if f == "BASE" else f for f in flags])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def validate(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main(["validate", "--task", "PegInsert", "--episodes", "3", "--json", *argv])
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("{")]
    return code, json.loads(lines[-1]) if lines else None, captured.err


def test_validate_runs_a_residual_checkpoint_over_its_base_and_only_its_base(setup, tmp_path, capsys):
    """No update made (learning starts after the run): the residual is still zero, so validate gives
    exactly the base's episodes through the same composition."""
    root, digest = setup
    out = tmp_path / "run"
    build_loop(replace(config(root, 30), learning_starts=1000), out, progress=False).run()
    code, residual, err = validate(capsys, "--checkpoint", str(out))
    assert code == 0, err
    assert residual["kind"] == "residual" and residual["base_hash"] == digest
    code, base, _ = validate(capsys, "--policy", str(root / "base.pt"))
    for figure in ("success_rate", "mean_return", "mean_length", "violations"):
        assert residual[figure] == base[figure], figure
    copy = tmp_path / "copy.pt"
    shutil.copy(root / "base.pt", copy)
    code, moved, _ = validate(capsys, "--checkpoint", str(out), "--base-policy", str(copy))
    assert code == 0 and moved["base_policy"] == str(copy.resolve())
    other = tmp_path / "other.pt"
    save_policy(other, GaussianBCPolicy.build(PolicySpec(17, 4), BCPolicyConfig(hidden=(16,))), {})
    code, _, err = validate(capsys, "--checkpoint", str(out), "--base-policy", str(other))
    assert code == 2 and f"this residual was trained over base {digest}" in err
    code, _, err = validate(capsys, "--policy", str(root / "base.pt"), "--base-policy", str(copy))
    assert code == 2 and "is a bc-gaussian policy, not a residual over a base" in err


def test_the_actor_starts_after_the_critic_warmup(setup, tmp_path):
    root, _ = setup
    run = replace(config(root, 100), critic_warmup=40)
    build_loop(run, tmp_path / "run", progress=False).run()
    rows = [
        r
        for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
        if "critic_loss" in r
    ]
    # Updates from step 20 on, one per step: 31 at 50 env steps (warm-up), 81 at 100 (the actor's on).
    assert [(r["env_steps"], r["updates"], "actor_loss" in r) for r in rows] == [
        (50, 31, False),
        (100, 81, True),
    ]


def test_evaluations_run_a_copy_so_the_training_episodes_base_keeps_its_acting_state(setup, tmp_path):
    root, _ = setup
    loop = build_loop(replace(config(root, 60), eval_every=30), tmp_path / "run", progress=False)
    evaluated, evaluate = [], loop.evaluate
    loop.evaluate = lambda policy: evaluated.append(policy) or evaluate(policy)
    loop.run()
    assert len(evaluated) == 2 and all(p is not loop.algorithm.policy for p in evaluated)
    assert all(p.base is not loop.algorithm.policy.base for p in evaluated)
    for name, value in loop.algorithm.policy.state_dict().items():  # the last eval saw these weights
        assert torch.equal(evaluated[-1].state_dict()[name], value), name
