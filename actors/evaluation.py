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
    policy_ms: list[float] = field(default_factory=list)  # the composition's decision alone, per step
    last_frame: np.ndarray | None = None  # env.render() after the last step, when asked for


def rollout(
    env, pipeline: ActionPipeline, seed: int, deterministic: bool = True, last_frame: bool = False
) -> EpisodeResult:
    obs, _ = env.reset(seed=seed)
    pipeline.reset()
    result = EpisodeResult(0.0, None, 0, 0)
    while True:
        start = time.perf_counter()
        decision = pipeline.act(obs, deterministic=deterministic)
        decided = time.perf_counter()
        obs, reward, terminated, truncated, info = env.step(decision.action)
        result.policy_ms.append((decided - start) * 1e3)
        result.step_ms.append((time.perf_counter() - start) * 1e3)
        result.episode_return += float(reward)
        result.length += 1
        if info.get("success") is not None:
            result.success = bool(result.success) or bool(info["success"])
        result.violations += int(info.get("safety_margin", np.inf) < 0)
        if terminated or truncated:
            result.last_frame = env.render() if last_frame else None
            return result


Z95 = 1.959964  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a success rate: unlike mean +- z*se it stays inside [0, 1] and is
    not zero-width at 0/n or n/n (with 20 episodes, 20/20 still means >= 84%)."""
    if n <= 0:
        raise ValueError(f"need at least one episode, got {n}")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def mean_interval(values: list[float], z: float = Z95) -> tuple[float, float]:
    """Normal-approximation 95% interval of a mean (zero width for a single value)."""
    mean = float(np.mean(values))
    half = z * float(np.std(values, ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return mean - half, mean + half


def summarize(results: list[EpisodeResult]) -> dict[str, float | int | list[float] | None]:
    """The eval row: success rate (None without a success signal) and mean undiscounted return, each
    with its 95% interval over the episodes (so a reader can tell a 10-point move from noise)."""
    successes = [r.success for r in results]
    returns = [r.episode_return for r in results]
    rate = None if None in successes else float(np.mean(successes))
    ci = None if rate is None else [round(x, 4) for x in wilson_interval(sum(successes), len(results))]
    return {
        "success_rate": rate,
        "success_ci": ci,
        "eval_return": float(np.mean(returns)),
        "eval_return_ci": [round(x, 3) for x in mean_interval(returns)],
        "eval_episodes": len(results),
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
