"""The hybrid (HIL-SERL) agent: double-DQN gripper target and toggle penalty by hand, tri-state demo
labels and the DiscreteGripper wrapper, one encoder pass, and a gripper critic that learns."""

from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch

from envs import DiscreteGripper
from learner.algorithms import make_algorithm
from learner.batch import Batch
from learner.hybrid import (
    HybridGripperAlgorithm,
    gripper_index,
    gripper_loss,
    gripper_reward,
    gripper_target,
    tristate_gripper_commands,
)
from learner.sac import SACAlgorithm, SACConfig
from policies import PolicySpec, build_policy
from policies.sac import HybridGripperPolicy


def hybrid_config(**overrides) -> SACConfig:
    return SACConfig(hidden=(32, 32), critics=4, **overrides)


def make_hybrid(config: SACConfig, state_dim: int, action_dim: int, seed: int = 0) -> HybridGripperAlgorithm:
    return HybridGripperAlgorithm(config, PolicySpec(state_dim, action_dim), seed=seed)


def batch_with_gripper(n=64, state_dim=6, seed=0, gripper=None) -> Batch:
    g = torch.Generator().manual_seed(seed)
    command = gripper if gripper is not None else torch.randint(-1, 2, (n,), generator=g).float()
    return Batch(
        state=torch.randn(n, state_dim, generator=g),
        action=torch.cat([torch.rand(n, 3, generator=g) * 2 - 1, command[:, None]], dim=1),
        reward=torch.rand(n, generator=g),
        discount=torch.full((n,), 0.9),
        terminated=(torch.rand(n, generator=g) < 0.2).float(),
        truncated=torch.zeros(n),
        next_state=torch.randn(n, state_dim, generator=g),
        images={},
        next_images={},
    )


def test_double_dqn_target_by_hand():
    online = torch.tensor([[0.0, 2.0, 1.0], [5.0, 1.0, 0.0], [0.0, 0.0, 9.0]])  # argmax: 1, 0, 2
    target_net = torch.tensor([[7.0, 3.0, 8.0], [4.0, 6.0, 6.0], [1.0, 1.0, 2.0]])
    reward = torch.tensor([1.0, 0.0, 0.5])
    discount = torch.tensor([0.9, 0.9, 0.81])
    mask = torch.tensor([1.0, 1.0, 0.0])
    got = gripper_target(online, target_net, reward, discount, mask)
    # The online net picks, the target net scores (not the target net's own max 8 / 6).
    torch.testing.assert_close(got, torch.tensor([1 + 0.9 * 3.0, 0.9 * 4.0, 0.5]))
    next_q_nan = target_net.clone()
    next_q_nan[2] = float("nan")  # garbage after a terminal must not leak into the target
    assert torch.isfinite(gripper_target(online, next_q_nan, reward, discount, mask)).all()


def test_gripper_labels_penalty_and_loss_by_hand():
    index = gripper_index(torch.tensor([-1.0, 0.0, 1.0, 0.3, -0.7, 2.0]))
    assert index.tolist() == [0, 1, 2, 1, 0, 2]
    reward = gripper_reward(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([0, 1, 2]), toggle_penalty=0.02)
    torch.testing.assert_close(reward, torch.tensor([0.98, 1.0, -0.02]))
    q = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.5, 1.0]])
    loss = gripper_loss(q, torch.tensor([2, 0]), torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(loss, torch.tensor(((3 - 2) ** 2 + (0 - 1) ** 2) / 2))


def test_tristate_demo_labels():
    commands = np.array([-1, -1, 1, 0.9, 1, -1, -0.2, 1], np.float32)
    assert tristate_gripper_commands(commands).tolist() == [0, 0, 1, 0, 0, -1, 0, 1]
    assert tristate_gripper_commands(np.array([1.0, 1.0])).tolist() == [1, 0]  # starts open


class RecordingEnv(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (1,))
    action_space = gym.spaces.Box(-1, 1, (4,))

    def __init__(self):
        self.received = []

    def reset(self, *, seed=None, options=None):
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.received.append(float(action[-1]))
        return np.zeros(1, np.float32), 0.0, False, False, {}


def test_discrete_gripper_holds_the_previous_command():
    inner = RecordingEnv()
    env = DiscreteGripper(inner)
    env.reset()
    sent = [0.0, 1.0, 0.0, 0.2, -1.0, 0.0, 1.0]
    for command in sent:
        action = np.array([0.1, 0.2, 0.3, command], np.float32)
        env.step(action)
        assert action[-1] == command  # the caller's array is not modified
    assert inner.received == [-1, 1, 1, 1, -1, -1, 1]
    env.reset()
    env.step(np.zeros(4, np.float32))
    assert inner.received[-1] == -1  # open again after reset


def test_hybrid_update_one_encoder_pass_and_continuous_dims():
    agent = make_algorithm("hybrid-gripper", hybrid_config(), PolicySpec(6, 4))
    assert isinstance(agent, HybridGripperAlgorithm) and agent.actor.net[-1].out_features == 2 * 3
    assert type(make_algorithm("sac", SACConfig(hidden=(8,), critics=2), PolicySpec(6, 4))) is SACAlgorithm
    with pytest.raises(ValueError, match="unknown algorithm"):
        make_algorithm("hybrid_gripper", hybrid_config(), PolicySpec(6, 4))
    calls = []
    agent.encoder.register_forward_hook(lambda *_: calls.append(1))
    metrics = agent.update(batch_with_gripper(), utd=2)
    # Per critic update, one online encoder pass over obs (differentiated) and one over next_obs (not),
    # shared by both critics: 2 updates -> 4 passes, not one per critic.
    assert len(calls) == 4
    assert {"critic_loss", "gripper_loss", "gripper_q_mean", "actor_loss"} <= set(metrics)
    assert all(torch.isfinite(v).all() for v in metrics.values())
    assert set(agent.optimizers) == {"critic", "actor", "temperature", "gripper"}
    # The actor process's policy: encoder, actor and the gripper critic that picks the command.
    policy = build_policy(agent.policy.describe())
    assert isinstance(policy, HybridGripperPolicy) and policy.discrete_gripper
    assert sorted({k.split(".")[0] for k in agent.policy.state_dict()}) == [
        "actor",
        "encoder",
        "gripper_critic",
    ]
    policy.load_weights(agent.policy.state_dict())
    action = policy.act({"state": np.zeros(6, np.float32)})
    assert action.shape == (4,) and action[-1] in (-1.0, 0.0, 1.0)


def test_hybrid_agent_rejects_a_one_dim_action():
    with pytest.raises(ValueError, match="continuous"):
        make_hybrid(hybrid_config(), 6, 1)


def test_gripper_critic_learns_which_command_pays():
    """Reward 1 for closing, 0 otherwise, every transition terminal: Q(close) -> 1 - penalty, and
    the greedy command becomes close."""
    torch.manual_seed(0)
    agent = make_hybrid(hybrid_config(gripper_toggle_penalty=0.02), 6, 4, seed=3)
    commands = torch.tensor([-1.0, 0.0, 1.0]).repeat(43)[:128]
    batch = batch_with_gripper(n=128, gripper=commands, seed=1)
    batch = replace(batch, reward=(commands == 1).float(), terminated=torch.ones(128))
    for _ in range(300):
        agent.update(batch)
    q = agent.gripper_critic(agent.encoder(batch.state)).mean(dim=0).detach()
    torch.testing.assert_close(q, torch.tensor([-0.02, 0.0, 0.98]), atol=0.05, rtol=0)
    assert agent.policy.act({"state": batch.state[0].numpy()}, deterministic=True)[-1] == 1.0
