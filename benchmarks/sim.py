"""Env throughput of the sim twin: steps/s in state mode and in pixels mode (two cameras).
Random actions, resets included, median of several timed runs after a warm-up."""

from __future__ import annotations

import statistics
import time

import numpy as np

from envs import make_env


def steps_per_second(task: str, obs_mode: str, steps: int, repeats: int, image_size: int = 128) -> float:
    env = make_env(task, obs_mode=obs_mode, image_size=image_size)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    rates = []
    for run in range(repeats + 1):  # run 0 warms up the GL context and caches
        actions = rng.uniform(-1, 1, size=(steps, 4)).astype(np.float32)
        start = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        if run:
            rates.append(steps / (time.perf_counter() - start))
    env.close()
    return statistics.median(rates)


def run(task: str = "PickCube", steps: int = 1000, repeats: int = 5, image_size: int = 128) -> dict:
    return {
        "task": task,
        "state_steps_per_s": round(steps_per_second(task, "state", steps, repeats), 1),
        "pixels_steps_per_s": round(steps_per_second(task, "pixels", steps, repeats, image_size), 1),
        "image_size": image_size,
        "cameras": 2,
        "steps_per_run": steps,
        "repeats": repeats,
        "statistic": "median",
    }
