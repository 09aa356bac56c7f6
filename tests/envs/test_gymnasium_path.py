"""The generic `--env gymnasium:<ID>` path, checked where a SAC user would check it: every task of
gymnasium's MuJoCo suite makes and steps on a fresh install; actions in [-1, 1] reach the env's own
Box bounds and the replay keeps the policy's actions; a time limit bootstraps (from the real final
observation) and an n-step return never crosses it, while a termination does not bootstrap."""

from __future__ import annotations

import json
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch

from envs import make_gymnasium_env
from learner.configs import TrainConfig
from learner.presets import with_preset
from learner.sac import critic_target
from realrl.commands.train import build_loop

MUJOCO_SUITE = [
    "InvertedPendulum-v5",
    "InvertedDoublePendulum-v5",
    "Reacher-v5",
    "Pusher-v5",
    "Swimmer-v5",
    "Hopper-v5",
    "HalfCheetah-v5",
    "Walker2d-v5",
    "Ant-v5",
    "Humanoid-v5",
    "HumanoidStandup-v5",
]


class Clock(gym.Env):
    """State = steps taken this episode; reward 1 per step; an asymmetric action Box. Every instance
    notes the actions it received."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)
    action_space = gym.spaces.Box(np.array([-3.0, 0.0], np.float32), np.array([3.0, 10.0], np.float32))
    instances: list[Clock] = []

    def __init__(self, terminate_at: int | None = None) -> None:
        self.terminate_at, self.t, self.received = terminate_at, 0, []
        Clock.instances.append(self)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.received.append(np.array(action, np.float32))
        self.t += 1
        terminated = self.t == self.terminate_at
        return np.array([self.t], np.float32), 1.0, terminated, False, {}


for _id, _kwargs in (("realrl-test/Clock-v0", {}), ("realrl-test/ClockEnds-v0", {"terminate_at": 3})):
    if _id not in gym.registry:  # a 5-step time limit: gymnasium's TimeLimit truncates
        gym.register(_id, entry_point=Clock, max_episode_steps=5, kwargs=_kwargs)


@pytest.mark.parametrize("env_id", MUJOCO_SUITE)
def test_every_task_of_gymnasiums_mujoco_suite_makes_and_steps(env_id):
    env = make_gymnasium_env(f"gymnasium:{env_id}")
    raw = env.unwrapped
    obs, _ = env.reset(seed=0)
    assert obs["state"].shape == raw.observation_space.shape and obs["state"].dtype == np.float32
    assert env.action_space.shape == raw.action_space.shape
    assert (env.action_space.low, env.action_space.high) == pytest.approx((-1.0, 1.0))
    obs, reward, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
    assert np.isfinite(reward) and np.all(np.isfinite(obs["state"])) and info["success"] is None
    env.close()


def test_inverted_pendulum_gets_its_full_plus_minus_three():
    env = make_gymnasium_env("gymnasium:InvertedPendulum-v5")  # Box(-3, 3)
    received = []
    inner = env.env
    step = inner.step
    inner.step = lambda action: received.append(np.array(action)) or step(action)
    env.reset(seed=0)
    for action in (1.0, -1.0, 0.0, 0.5, 7.0):
        env.step(np.array([action], np.float32))
    assert np.concatenate(received) == pytest.approx([3.0, -3.0, 0.0, 1.5, 3.0])  # 7 is clipped to 1
    env.close()


def test_actions_are_rescaled_to_an_asymmetric_box():
    env = make_gymnasium_env("gymnasium:realrl-test/Clock-v0")
    env.reset(seed=0)
    for action in ([-1, -1], [1, 1], [0, 0], [0.5, -0.5], [-4, 4]):
        env.step(np.array(action, np.float32))
    clock = env.unwrapped
    expected = [[-3, 0], [3, 10], [0, 5], [1.5, 2.5], [-3, 10]]
    assert np.array(clock.received) == pytest.approx(np.array(expected, np.float32))


def clock_config(env: str, steps: int) -> TrainConfig:
    """No updates (learning starts after the run): uniform random actions into the replay."""
    config = TrainConfig(env=f"gymnasium:{env}", steps=steps, learning_starts=1000, n_step=3)
    config = with_preset(config, given={"n_step", "learning_starts"})
    return replace(config, eval_every=10_000, eval_episodes=1, agent=replace(config.agent, gamma=0.5))


def transitions(replay) -> dict[tuple[int, float], dict[str, float]]:
    """Every stored transition, keyed by (episode, start state), from one sample of all starts."""
    starts = torch.nonzero(replay.valid).squeeze(1)
    batch = replay._gather(starts)
    rows = {}
    for i, slot in enumerate(starts.tolist()):
        key = (int(replay.episode_id[slot]), batch.state[i, 0].item())
        rows[key] = {
            "reward": batch.reward[i].item(),
            "discount": batch.discount[i].item(),
            "mask": batch.mask[i].item(),
            "truncated": batch.truncated[i].item(),
            "next_state": batch.next_state[i, 0].item(),
        }
    return rows


def test_the_replay_keeps_the_policys_actions_and_the_env_gets_them_rescaled(tmp_path):
    Clock.instances.clear()
    loop = build_loop(clock_config("realrl-test/Clock-v0", 5), tmp_path / "run", progress=False)
    loop.run()
    train_env = Clock.instances[0]  # built before the eval env
    assert len(train_env.received) == 5
    stored = loop.replay.online.action[:5].numpy()  # the episode's five steps, slots 0..4
    assert np.all(np.abs(stored) <= 1.0)
    low, high = Clock.action_space.low, Clock.action_space.high
    assert np.array(train_env.received) == pytest.approx(low + (stored + 1) / 2 * (high - low), abs=1e-5)


def test_a_time_limit_bootstraps_and_no_n_step_return_crosses_it(tmp_path):
    loop = build_loop(clock_config("realrl-test/Clock-v0", 10), tmp_path / "run", progress=False)
    loop.run()
    rows = transitions(loop.replay.online)
    assert len(rows) == 10  # two 5-step episodes, each its own
    for episode in {e for e, _ in rows}:
        # 3-step returns of reward 1, gamma 0.5: 1.75 with discount 0.125 ...
        assert rows[episode, 0] == {
            "reward": 1.75, "discount": 0.125, "mask": 1.0, "truncated": 0.0, "next_state": 3.0
        }  # fmt: skip
        # ... shortened at the time limit, bootstrapping (mask 1) from the final observation 5.
        assert rows[episode, 3] == {
            "reward": 1.5, "discount": 0.25, "mask": 1.0, "truncated": 1.0, "next_state": 5.0
        }  # fmt: skip
        assert rows[episode, 4] == {
            "reward": 1.0, "discount": 0.5, "mask": 1.0, "truncated": 1.0, "next_state": 5.0
        }  # fmt: skip
    starts = torch.nonzero(loop.replay.online.valid).squeeze(1)
    batch = loop.replay.online._gather(starts)
    next_q = torch.full((2, len(starts)), 10.0)
    target = critic_target(next_q, torch.zeros(len(starts)), batch.reward, batch.discount, batch.mask,
                           torch.tensor(0.0), False)  # fmt: skip
    assert target == pytest.approx(batch.reward + batch.discount * 10.0)  # every row bootstraps


def test_a_termination_does_not_bootstrap(tmp_path):
    loop = build_loop(clock_config("realrl-test/ClockEnds-v0", 3), tmp_path / "run", progress=False)
    loop.run()
    rows = transitions(loop.replay.online)
    assert rows[0, 0] == {"reward": 1.75, "discount": 0.125, "mask": 0.0, "truncated": 0.0, "next_state": 3.0}
    assert rows[0, 2] == {"reward": 1.0, "discount": 0.5, "mask": 0.0, "truncated": 0.0, "next_state": 3.0}
    batch = loop.replay.online._gather(torch.nonzero(loop.replay.online.valid).squeeze(1))
    target = critic_target(torch.full((2, 3), 10.0), torch.zeros(3), batch.reward, batch.discount,
                           batch.mask, torch.tensor(0.0), False)  # fmt: skip
    assert sorted(target.tolist()) == pytest.approx([1.0, 1.5, 1.75])  # the returns alone


def test_one_seed_gives_one_run(tmp_path):
    def run(seed: int, name: str) -> list[dict]:
        config = with_preset(
            TrainConfig(env="gymnasium:Pendulum-v1", steps=300, learning_starts=100, seed=seed)
        )
        config = replace(config, eval_every=150, eval_episodes=1, log_every=100,
                         agent=replace(config.agent, hidden=(16,)))  # fmt: skip
        build_loop(config, tmp_path / name, progress=False).run()
        rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        timing = {"wall_s", "updates_per_s"}
        return [{k: v for k, v in row.items() if k not in timing} for row in rows]

    first = run(0, "a")
    assert len([r for r in first if "eval_return" in r]) == 2 and first == run(0, "b")
    assert [r for r in run(1, "c") if "eval_return" in r] != [r for r in first if "eval_return" in r]
