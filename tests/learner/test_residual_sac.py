"""Residual RL as an RLPD SAC variant (learner.residual): the critics see clip(base + residual) in
the target and in the actor's loss, the base never trains, and demos are relabelled with the base's
actions along each episode."""

import numpy as np
import pytest
import torch
from test_replay import make_episode
from test_sac import random_batch, small_config

from actors.composition import ActionPipeline
from learner.residual import ResidualSACAlgorithm
from policies import PolicySpec
from policies.bc import ChunkBCPolicy
from policies.configs import BCPolicyConfig, ResidualPolicyConfig
from policies.policy_files import save_policy
from policies.residual import executed_action

SPEC = PolicySpec(state_dim=6, action_dim=3)


@pytest.fixture
def algorithm(tmp_path):
    base = ChunkBCPolicy.build(SPEC, BCPolicyConfig(hidden=(16,), chunk_size=2), seed=7)
    digest = save_policy(tmp_path / "base.pt", base, {})
    residual = ResidualPolicyConfig(scale=0.2, base=str(tmp_path / "base.pt"), base_hash=digest)
    return ResidualSACAlgorithm(small_config(), SPEC, seed=0, residual=residual)


def with_base_actions(batch, seed=1):
    g = torch.Generator().manual_seed(seed)
    batch.base_action = torch.rand(len(batch), 3, generator=g) * 2 - 1
    batch.next_base_action = torch.rand(len(batch), 3, generator=g) * 2 - 1
    batch.next_base_action[:4] = 1.0  # at the bound: the executed action is clipped there
    return batch


def test_executed_action_is_the_clipped_sum():
    base = torch.tensor([[0.5, 0.95, -0.9]])
    residual = torch.tensor([[0.1, 0.1, -0.2]])
    assert executed_action(base, residual)[0].tolist() == pytest.approx([0.6, 1.0, -1.0])


def test_the_target_critics_see_the_executed_next_action(algorithm):
    batch = with_base_actions(random_batch(n=32, state_dim=6, action_dim=3))
    seen = []
    forward = algorithm.target_critic.forward
    algorithm.target_critic.forward = lambda features, action, members=None: (
        seen.append(action) or forward(features, action, members)
    )
    algorithm.update(batch)
    (action,) = seen
    assert action.abs().max() <= 1.0
    assert (action - batch.next_base_action).abs().max() <= 0.2 + 1e-6  # within the residual's scale
    assert not torch.equal(action, batch.next_base_action)  # a stochastic residual moved it
    assert torch.all(action[:4] <= 1.0) and torch.all((action[:4] - 1.0).abs() <= 0.2 + 1e-6)


def test_updates_train_the_residual_and_never_the_base(algorithm):
    base_before = {k: v.clone() for k, v in algorithm.policy.base.state_dict().items()}
    actor_before = [p.clone() for p in algorithm.actor.parameters()]
    for seed in range(3):
        algorithm.update(with_base_actions(random_batch(n=32, state_dim=6, action_dim=3, seed=seed), seed))
    for name, value in algorithm.policy.base.state_dict().items():
        assert torch.equal(value, base_before[name]), name
    assert any(not torch.equal(p, q) for p, q in zip(algorithm.actor.parameters(), actor_before, strict=True))
    assert not [n for n in algorithm.policy.pushed_state_dict() if n.startswith("base.")]
    with pytest.raises(ValueError, match="needs the batch's base actions"):
        algorithm.update(random_batch(n=32, state_dim=6, action_dim=3))


def test_demos_are_relabelled_with_the_base_run_along_the_episode(algorithm):
    episode = make_episode([0.1, 0.2, 0.3, 0.4], action_dim=3)
    episode.states = np.repeat(episode.states, 6, axis=1)
    relabelled = algorithm.relabel_demo(episode)
    pipeline = ActionPipeline(algorithm.policy.base)  # the chunk base, stateful, as an actor runs it
    pipeline.reset()
    expected = [pipeline.act({"state": s}, deterministic=True).action for s in episode.states]
    np.testing.assert_allclose(relabelled.base_action, np.stack(expected), rtol=1e-6)
    np.testing.assert_array_equal(relabelled.action, episode.action)  # the executed actions stay
    assert relabelled.base_action.shape == (4, 3)


def test_a_residual_without_a_base_or_with_bc_weight_is_refused():
    with pytest.raises(ValueError, match="needs a base policy"):
        ResidualSACAlgorithm(small_config(), SPEC, residual=None)
    with pytest.raises(ValueError, match="not for a residual"):
        ResidualSACAlgorithm(small_config(bc_weight=1.0), SPEC, residual=ResidualPolicyConfig(base="x"))


def test_a_critic_warmup_update_leaves_the_actor_and_temperature_alone(algorithm):
    actor_before = [p.clone() for p in algorithm.actor.parameters()]
    critic_before = [p.clone() for p in algorithm.critic.parameters()]
    alpha_before = algorithm.log_alpha.detach().clone()
    metrics = algorithm.update(
        with_base_actions(random_batch(n=32, state_dim=6, action_dim=3)), train_actor=False
    )
    assert "actor_loss" not in metrics and "critic_loss" in metrics
    assert all(torch.equal(p, q) for p, q in zip(algorithm.actor.parameters(), actor_before, strict=True))
    assert torch.equal(algorithm.log_alpha.detach(), alpha_before)
    assert any(
        not torch.equal(p, q) for p, q in zip(algorithm.critic.parameters(), critic_before, strict=True)
    )
