"""`realrl validate`, the gate before hardware: a policy (a MODEL file, a run's latest checkpoint,
random or the scripted expert) rolled out in the task's sim twin through the actor's composition and
the in-training evaluation's code path (actors.evaluation), optionally under domain randomisation.
Prints the design's JSON figures, writes a report PNG and fails when a given threshold is missed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actors.config import ValidateConfig
from actors.evaluation import EpisodeResult, Evaluator, rollout, summarize
from actors.scripted import ScriptedPolicy
from actors.specs import policy_spec
from envs import make_env
from formats.files import atomic_write
from formats.progress import progress_bar
from policies import Policy
from policies.policy_files import load_critic, load_policy, read_policy_file
from policies.random import RandomPolicy
from policies.verifier import BestOfN

_log = logging.getLogger(__name__)
REPORT = "validate.png"
LATEST = Path("checkpoints") / "latest"
POLICY_FILE, CRITIC_FILE = "policy.pt", "critic.pt"


@dataclass
class Validated:
    summary: dict[str, Any]
    passed: bool


def checkpoint_file(run: str | Path, name: str, flag: str) -> Path:
    """`name` in the run's latest checkpoint, by the directory `latest` points to now: a run still
    training moves the link, and a policy and its critic must come from one checkpoint."""
    path = (Path(run) / LATEST).resolve() / name
    if not path.is_file():
        raise ValueError(
            f"{flag} {run}: no {LATEST / name} (not a run directory, no checkpoint yet, {why_not(name)})"
        )
    return path


def why_not(name: str) -> str:
    """Why a run's checkpoint may lack `name`, besides not being there yet."""
    hybrid = "a hybrid-gripper run, whose critic scores no whole actions, " if name == CRITIC_FILE else ""
    older = f"or a run checkpointed before checkpoints held their {name}"
    return f"{hybrid}{older}: resume it for a step to write one"


def policy_model_path(config: ValidateConfig) -> Path | None:
    """The model file validate loads: --policy MODEL, or the run's latest checkpoint's policy."""
    if config.checkpoint is not None:
        return checkpoint_file(config.checkpoint, POLICY_FILE, "--checkpoint")
    return None if config.policy in ("random", "scripted") else Path(config.policy)


def load_validated_policy(config: ValidateConfig) -> tuple[Policy | None, dict[str, Any]]:
    """The policy of a model file (None for random/scripted, which need the env) and what to report
    about it."""
    path = policy_model_path(config)
    if path is None:
        if config.best_of > 1:
            raise ValueError(f"--best-of: the {config.policy} policy has no candidates to rank")
        return None, {"policy": config.policy}
    kind = read_policy_file(path)[0]["description"]["kind"]
    if config.sample_steps and kind != "bc-shortcut":
        raise ValueError(f"--sample-steps: {path} is a {kind} policy, not a shortcut one")
    if config.base_policy and kind != "residual":
        raise ValueError(f"--base-policy: {path} is a {kind} policy, not a residual over a base")
    changes = {"sample_steps": config.sample_steps} if config.sample_steps else {}
    if config.base_policy:
        changes["base"] = str(Path(config.base_policy).resolve())
    model = load_policy(path, config_changes=changes)
    about = {"policy": str(path), "kind": kind, "model_hash": model.hash}
    if kind == "residual":
        about.update(base_policy=model.policy.config.base, base_hash=model.policy.config.base_hash)
    if config.best_of == 1:
        return model.policy, about
    critic = load_critic(critic_path(config, path), device=model.policy.device)
    about.update(best_of=config.best_of, critic=critic.path, critic_hash=critic.hash)
    try:
        return BestOfN(model.policy, critic.critic, config.best_of), about
    except ValueError as error:
        raise ValueError(f"--best-of: policy {path}, critic {critic.path}: {error}") from error


def critic_path(config: ValidateConfig, policy_path: Path) -> Path:
    """The critic file of --best-of: --critic (a file, or a run's latest checkpoint's), else the one
    in the --checkpoint run's checkpoint the policy came from."""
    if config.critic is None:
        path = policy_path.with_name(CRITIC_FILE)
        if not path.is_file():
            raise ValueError(
                f"--best-of: checkpoint {policy_path.parent} holds no {CRITIC_FILE} ({why_not(CRITIC_FILE)})"
            )
        return path
    if Path(config.critic).is_dir():
        return checkpoint_file(config.critic, CRITIC_FILE, "--critic")
    return Path(config.critic)


def make_validation_env(config: ValidateConfig, policy: Policy | None):
    """The twin in the observation mode the policy reads, rendering for the report's frames."""
    spec = None if policy is None else policy.spec
    obs = "pixels" if spec is not None and spec.cameras else "state"
    kwargs = {"image_size": spec.image_size} if spec is not None and spec.cameras else {}
    env = make_env(config.task, obs_mode=obs, randomize=config.randomize, render_mode="rgb_array", **kwargs)
    if policy is not None:
        try:
            policy.spec.check(policy_spec(env), f"task {config.task}")
        except ValueError:
            env.close()
            raise
    return env


def validate(config: ValidateConfig, progress: bool = True) -> Validated:
    policy, about = load_validated_policy(config)
    env = make_validation_env(config, policy)
    try:
        if policy is None:
            spec = policy_spec(env)
            policy = ScriptedPolicy(env) if config.policy == "scripted" else RandomPolicy(spec, config.seed)
        results = run_episodes(env, policy, config, progress)
    finally:
        env.close()
    summary = {**about, "task": config.task, **figures(results)}
    report = report_path(config)
    write_report(results, report, title=f"{config.task}: {about['policy']}", frames=config.failure_frames)
    failures = threshold_failures(summary, config)
    summary.update(report=str(report), thresholds_failed=failures, passed=not failures)
    return Validated(summary, not failures)


def run_episodes(env, policy: Policy, config: ValidateConfig, progress: bool) -> list[EpisodeResult]:
    evaluator = Evaluator(env, config.episodes, seed=config.seed)
    pipeline = evaluator.compose(policy)
    results, kept = [], 0
    bar = progress_bar(total=config.episodes, unit="ep", desc="validate", disable=not progress)
    for k in range(config.episodes):
        result = rollout(env, pipeline, evaluator.seed + k, last_frame=kept < config.failure_frames)
        if result.success is False and result.last_frame is not None:
            kept += 1
        else:
            result.last_frame = None  # only failures' frames are kept
        results.append(result)
        bar.update(1)
        bar.set_postfix(success=f"{np.mean([bool(r.success) for r in results]):.2f}")
    bar.close()
    return results


def figures(results: list[EpisodeResult]) -> dict[str, Any]:
    """The design's figures (`episodes`, `success_rate`, `violations`, `violation_episodes`,
    `mean_return`, `p99_step_ms`) plus the success interval, mean episode length and the decision's
    own time per step (`p50_policy_ms`, `p99_policy_ms`: what best-of-N adds shows here)."""
    evaluated = summarize(results)
    steps_ms = np.concatenate([r.step_ms for r in results])
    policy_ms = np.concatenate([r.policy_ms for r in results])
    return {
        "episodes": len(results),
        "success_rate": evaluated["success_rate"],
        "success_ci": evaluated["success_ci"],
        "violations": int(sum(r.violations for r in results)),
        "violation_episodes": int(sum(r.violations > 0 for r in results)),
        "mean_return": round(evaluated["eval_return"], 4),
        "mean_length": round(float(np.mean([r.length for r in results])), 2),
        "p50_step_ms": round(float(np.percentile(steps_ms, 50)), 3),
        "p99_step_ms": round(float(np.percentile(steps_ms, 99)), 3),
        "p50_policy_ms": round(float(np.percentile(policy_ms, 50)), 3),
        "p99_policy_ms": round(float(np.percentile(policy_ms, 99)), 3),
    }


def threshold_failures(summary: dict[str, Any], config: ValidateConfig) -> list[str]:
    """Each threshold given and missed, in words."""
    failures = []
    rate = summary["success_rate"]
    if config.min_success is not None and (rate is None or rate < config.min_success):
        failures.append(f"success_rate {rate} < --min-success {config.min_success}")
    most = config.max_violation_episodes
    if most is not None and summary["violation_episodes"] > most:
        failures.append(
            f"violation_episodes {summary['violation_episodes']} > --max-violation-episodes "
            f"{config.max_violation_episodes}"
        )
    return failures


def report_path(config: ValidateConfig) -> Path:
    if config.report:
        return Path(config.report)
    if config.checkpoint:
        return Path(config.checkpoint) / REPORT
    if config.policy not in ("random", "scripted"):
        return Path(config.policy).with_name(f"{Path(config.policy).stem}.{REPORT}")
    return Path(REPORT)


def write_report(results: list[EpisodeResult], path: Path, title: str, frames: int) -> None:
    """Success and return per episode, and the last frame of up to `frames` failed episodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    failed = [(k, r.last_frame) for k, r in enumerate(results) if r.last_frame is not None][:frames]
    columns = max(2, len(failed))
    fig = plt.figure(figsize=(2.6 * columns, 6.2 if failed else 3.4))
    grid = fig.add_gridspec(2 if failed else 1, columns)
    ax_episodes = fig.add_subplot(grid[0, :])
    episodes = np.arange(len(results))
    returns = np.array([r.episode_return for r in results])
    success = np.array([bool(r.success) for r in results])
    ax_episodes.scatter(episodes[success], returns[success], color="tab:green", marker="o", label="success")
    ax_episodes.scatter(episodes[~success], returns[~success], color="tab:red", marker="x", label="failure")
    ax_episodes.axhline(returns.mean(), color="grey", linestyle="--", linewidth=1, label="mean return")
    ax_episodes.legend(loc="best", fontsize=8)
    rate = success.mean()
    ax_episodes.set(
        xlabel="episode",
        ylabel="return",
        title=f"{title}: success {rate:.2f} over {len(results)} episodes",
    )
    ax_episodes.grid(alpha=0.3, axis="y")
    for column, (k, frame) in enumerate(failed):
        ax = fig.add_subplot(grid[1, column])
        ax.imshow(frame)
        ax.set_title(f"failed: episode {k}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)
