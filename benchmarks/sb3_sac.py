"""Stable-Baselines3's SAC on a gymnasium task, evaluated on the schedule of `realrl bench learning
--suite control`: a yardstick run on the same machine and the same env version as the suite, for
when a reading off a published curve (v2/v4 tasks, other machines) is too coarse to judge by.

SB3's SAC with its own defaults, which are the SAC paper's (learning rate 3e-4 for actor, critics
and temperature; batch 256; tau 0.005; gamma 0.99; initial temperature 1 and target entropy -|A|;
two 256x256 critics), and one change: 5000 uniform steps before learning, as the control preset and
CleanRL do (SB3's default is 100). Every `--eval-every` env steps the deterministic policy (the
squashed mean) plays `--eval-episodes` episodes on a separate env, as the suite's runs do.

Installed beside the project's env, on its torch and gymnasium, by `make bench-sb3`, which also
runs it:

    PYTHONPATH=.:.venv/sb3-2.9.2 .venv/bin/python -m benchmarks.sb3_sac --env Walker2d-v5 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import gymnasium as gym
import torch

from benchmarks.configs import BenchSB3Config
from formats.config import add_dataclass_arguments, dataclass_from_args

SB3_VERSION = "2.9.2"
INSTALL_HINT = f"run `make bench-sb3` to install it into .venv/sb3-{SB3_VERSION}"


def evaluate(model, env: gym.Env, episodes: int, seed: int) -> float:
    """Mean undiscounted return of the deterministic policy over `episodes` episodes."""
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return statistics.fmean(returns)


def train_one(args: BenchSB3Config, seed: int) -> list[list[float]]:
    """[[env_steps, eval_return], ...] of one seed."""
    from stable_baselines3 import SAC

    model = SAC("MlpPolicy", gym.make(args.env), learning_starts=args.learning_starts, seed=seed, verbose=0)
    eval_env = gym.make(args.env)
    curve = []
    for steps in range(args.eval_every, args.steps + 1, args.eval_every):
        # reset_num_timesteps=False continues the same episode and counts learning_starts once.
        model.learn(total_timesteps=args.eval_every, reset_num_timesteps=False)
        # Eval seeds far from the training seeds, different on every eval point.
        value = evaluate(model, eval_env, args.eval_episodes, 10_000 * (seed + 1) + steps)
        curve.append([steps, value])
        print(f"{args.env} seed {seed}: {steps} steps, eval return {value:.1f}", file=sys.stderr, flush=True)
    return curve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataclass_arguments(parser, BenchSB3Config)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parsed = parser.parse_args(argv)
    args = dataclass_from_args(BenchSB3Config, parsed)
    if args.steps < args.eval_every or args.steps % args.eval_every:
        parser.error(f"--steps {args.steps} must be a multiple of --eval-every {args.eval_every}")
    try:
        import stable_baselines3
    except ImportError:
        parser.error(f"stable_baselines3 is not importable: {INSTALL_HINT}")
    torch.set_num_threads(args.threads)
    curves = {seed: train_one(args, seed) for seed in args.seeds}
    final = [curve[-1][1] for curve in curves.values()]
    report = {
        "benchmark": "sb3_sac",
        "sb3_version": stable_baselines3.__version__,
        "env": args.env,
        "steps": args.steps,
        "learning_starts": args.learning_starts,
        "eval_episodes": args.eval_episodes,
        "final_return": {"per_seed": final, "mean": statistics.fmean(final)},
        "curves": {str(seed): curve for seed, curve in curves.items()},
    }
    if parsed.json:
        print(json.dumps(report))
    else:
        mean = report["final_return"]["mean"]
        print(f"{args.env}: eval return at {args.steps} steps {final} (mean {mean:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
