"""The in-process actor (`realrl train --actors 0`): a step source for the training loop that
steps the env here with the learner's own policy object (no weights to copy) and writes each
transition straight into the online replay buffer. For debugging and fast sim runs; the actor
process (actors.actor) is the same composition over ZeroMQ."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from actors.composition import ActionPipeline
from policies import Policy


def mean_episode_stats(finished: list[tuple[float, bool]]) -> dict[str, float]:
    if not finished:
        return {}
    return {
        "train_episode_return": sum(r for r, _ in finished) / len(finished),
        "train_success_rate": sum(s for _, s in finished) / len(finished),
    }


class LocalActor:
    """Implements learner.sources.StepSource (duck-typed: actors/ does not import the learner).
    `replay`: anything with start_episode(obs) and add(action, reward, terminated, truncated, next_obs)."""

    kind = "the in-process actor (train --actors 0)"

    def __init__(self, env, replay, seed: int, explore: Policy | None = None, explore_steps: int = 0) -> None:
        self.env, self.replay, self.seed = env, replay, seed
        self.explore, self.explore_steps = explore, explore_steps
        self.env_steps = self.episodes = 0
        self._episode_return, self._episode_success = 0.0, False
        self._finished: list[tuple[float, bool]] = []  # (return, success) since the last row
        self.pipeline: ActionPipeline | None = None
        self._obs = None
        self._decision = None  # under a residual: the decision already made for self._obs

    # -- the step source ----------------------------------------------------------------------
    def fresh_start(self) -> None:
        pass

    def start(self, policy: Policy, updates: int) -> None:
        self.pipeline = ActionPipeline(policy, explore=self.explore, explore_steps=self.explore_steps)
        self.pipeline.decisions = self.env_steps
        self._obs = self._reset()

    def collect(self, limit: int, wait: bool) -> None:
        """One env step (training: the stochastic policy)."""
        if self.env_steps >= limit:
            return
        decision = self._decision or self.pipeline.act(self._obs)
        self._decision = None
        next_obs, reward, terminated, truncated, info = self.env.step(decision.action)
        done = terminated or truncated
        self.replay.add(decision.action, reward, terminated, truncated, self._observed(next_obs, final=done))
        self.env_steps += 1
        self._episode_return += float(reward)
        self._episode_success = self._episode_success or bool(info.get("success"))
        if done:
            self._finished.append((self._episode_return, self._episode_success))
            self._episode_return, self._episode_success = 0.0, False
            self.episodes += 1
            next_obs = self._reset()
        self._obs = next_obs

    def _reset(self):
        obs, _ = self.env.reset(seed=self.seed + self.episodes)
        self.pipeline.reset()
        self.replay.start_episode(self._observed(obs, final=False))
        return obs

    def _observed(self, obs, final: bool):
        """`obs` as the replay stores it. Under a residual it carries the base's action there: the
        next decision is made now (its base proposal is that action), or for a final observation the
        base's proposal alone."""
        if self.pipeline.residual is None:
            return obs
        if final:
            return {**obs, "base_action": self.pipeline.propose(obs)}
        self._decision = self.pipeline.act(obs)
        return {**obs, "base_action": self._decision.base_action}

    def after_update(self, policy: Policy, updates: int) -> None:
        pass  # the pipeline holds the learner's policy object itself

    def row_metrics(self, elapsed_s: float) -> dict[str, Any]:
        finished, self._finished = self._finished, []
        return {"episodes": self.episodes, **mean_episode_stats(finished)}

    def finish(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self, finished: bool) -> None:
        self.env.close()

    def summary(self) -> dict[str, Any]:
        return {}

    # -- checkpoints --------------------------------------------------------------------------
    def consistent(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()  # one thread: the replay and this cannot disagree

    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        generator = None if self.explore is None else self.explore.generator.get_state()
        return {"explore_generator": generator}, {"episodes": self.episodes}

    def prune(self, oldest_counters: dict[str, Any]) -> None:
        pass

    def restore(self, state: dict[str, Any] | None, counters: dict[str, Any] | None) -> None:
        if state is None:
            return
        self.env_steps, self.episodes = counters["env_steps"], counters["episodes"]
        if self.explore is not None and state["explore_generator"] is not None:
            self.explore.generator.set_state(torch.as_tensor(state["explore_generator"]).cpu())
