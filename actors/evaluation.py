"""Evaluation rollouts: episodes of the actor's composition with the deterministic policy, in a
sim twin (or any env). In-training evaluation and `realrl validate` are this one code path."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from actors.composition import ActionPipeline
from policies import Policy

EVAL_SEED = 1_000_000  # eval episodes use seeds EVAL_SEED + k: never a training episode's


@dataclass
class EpisodeResult:
    episode_return: float
    success: bool | None  # None for envs without a success signal
    length: int
    violations: int  # steps with safety_margin < 0
    step_ms: list[float] = field(default_factory=list)  # policy + env step, per step


def rollout(env, pipeline: ActionPipeline, seed: int, deterministic: bool = True) -> EpisodeResult:
    obs, _ = env.reset(seed=seed)
    pipeline.reset()
    result = EpisodeResult(0.0, None, 0, 0)
    while True:
        start = time.perf_counter()
        decision = pipeline.act(obs, deterministic=deterministic)
        obs, reward, terminated, truncated, info = env.step(decision.action)
        result.step_ms.append((time.perf_counter() - start) * 1e3)
        result.episode_return += float(reward)
        result.length += 1
        if info.get("success") is not None:
            result.success = bool(result.success) or bool(info["success"])
        result.violations += int(info.get("safety_margin", np.inf) < 0)
        if terminated or truncated:
            return result


def summarize(results: list[EpisodeResult]) -> dict[str, float | None]:
    """The eval row: success rate (None without a success signal) and mean undiscounted return."""
    successes = [r.success for r in results]
    return {
        "success_rate": None if None in successes else float(np.mean(successes)),
        "eval_return": float(np.mean([r.episode_return for r in results])),
    }


class Evaluator:
    """Evaluates any policy in `env`: `episodes` deterministic episodes with seeds seed + k, through
    the same composition the actor runs (`compose` wraps the policy; default: the policy alone)."""

    def __init__(
        self,
        env,
        episodes: int,
        seed: int = EVAL_SEED,
        compose: Callable[[Policy], ActionPipeline] = ActionPipeline,
    ) -> None:
        self.env, self.episodes, self.seed, self.compose = env, episodes, seed, compose

    def episodes_of(self, policy: Policy) -> list[EpisodeResult]:
        pipeline = self.compose(policy)
        return [rollout(self.env, pipeline, self.seed + k) for k in range(self.episodes)]

    def __call__(self, policy: Policy) -> dict[str, float | None]:
        return summarize(self.episodes_of(policy))
