"""`realrl bench residual`: does residual RL over a weak BC base reach 90% success in at most half
the env steps RLPD from scratch needs with the same demos? End to end, through the user's commands:
record scripted demos, train a deliberately weak BC base on them (`realrl bc train`), measure it
(`realrl validate`), then train residual RL over it and RLPD from scratch with those demos
(`realrl train`, same budget, same seeds), and report when each first reaches 90%, the ratio of the
medians and one plot of the curves with the base's success as a line.

Every stage is read back when its output exists and runs are resumed when stopped half way (as
`realrl bench learning` does), so an interrupted benchmark continues where it stopped. Layout:
<out>/demos, <out>/base.pt (+ base.validate.json), <out>/{residual,rlpd}/seed<N>/ (run directories),
<out>/residual.json and residual.png."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks.configs import BenchResidualConfig
from benchmarks.learning import REACH, LearningTask, call_logged, run_rows, stability, train_all
from formats.config import to_dict
from learner.metrics import is_eval_row

METHODS = ("residual", "rlpd")
SETTINGS = "bench.json"
GROWABLE = ("steps", "seeds")
TARGET_RATIO = 0.5  # the bar: residual needs at most half RLPD's env steps to reach 90%


def realrl(argv: list[str], log: Path, stdout: Path | None = None) -> None:
    """Run one `realrl` command, its output appended to `log` (its stdout to `stdout` when given);
    raise naming the log if it fails."""
    code = call_logged([sys.executable, "-m", "realrl.cli", *argv], log, threads=1, stdout=stdout)
    if code != 0:
        raise RuntimeError(f"realrl {' '.join(argv[:2])} exited {code}; see {log}")


def check_settings(config: BenchResidualConfig, out: Path) -> None:
    """Keep the settings in <out>/bench.json: a rerun with others would read back demos, a base and
    runs made with the old ones, so it is refused, naming what differs (--steps and --seeds may
    grow: runs are extended, seeds added)."""
    current = {k: v for k, v in to_dict(config).items() if k not in ("out", "jobs")}
    path = out / SETTINGS
    if path.exists():
        saved = json.loads(path.read_text())
        differ = [
            f"--{name.replace('_', '-')} (saved {saved.get(name)!r}, given {value!r})"
            for name, value in current.items()
            if name not in GROWABLE and saved.get(name) != value
        ]
        if differ:
            raise ValueError(
                f"{out} holds a benchmark with other settings: {', '.join(differ)}; use a new --out"
            )
    path.write_text(json.dumps(current, indent=2) + "\n")


def demos_done(directory: Path, episodes: int) -> bool:
    manifest = directory / "manifest.json"
    return manifest.exists() and len(json.loads(manifest.read_text())["episodes"]) >= episodes


def prepare_base(config: BenchResidualConfig, out: Path) -> dict[str, Any]:
    """The demos, the weak BC base trained on them and its validation, each made once."""
    log = out / "prepare.log"
    demos = out / "demos"
    if not demos_done(demos, config.demos):
        argv = ["demos", "record", "--task", config.task, "--episodes", str(config.demos), "--obs", "state"]
        realrl([*argv, "--out", str(demos), "--noise", str(config.demo_noise)], log)
    base = out / "base.pt"
    if not base.exists():
        argv = ["bc", "train", "--demos", str(demos), "--out", str(base), "--policy", config.base_policy]
        argv += ["--steps", str(config.base_steps), "--threads", "1"]
        if config.base_policy == "shortcut":
            argv += ["--model.sample-steps", str(config.base_sample_steps)]
        realrl(argv, log)
    validated = out / "base.validate.json"
    if not validated.exists():
        argv = ["validate", "--task", config.task, "--policy", str(base), "--episodes"]
        argv += [str(config.validate_episodes), "--report", str(out / "base.validate.png"), "--json"]
        partial = validated.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        realrl(argv, log, stdout=partial)
        partial.replace(validated)  # only a finished validation counts
    return json.loads(validated.read_text().strip().splitlines()[-1])


def method_tasks(
    config: BenchResidualConfig, out: Path, extra_flags: dict[str, Any] | None = None
) -> dict[str, LearningTask]:
    """The two runs per seed, as `realrl train` flags: the same task, demos, budget and evaluation
    (`extra_flags`: more TrainConfig fields for both, e.g. a test's small networks)."""
    common = {
        "task": config.task,
        "obs": "state",
        "demos": str(out / "demos"),
        "eval_episodes": config.eval_episodes,
        **(extra_flags or {}),
    }
    residual = {
        **common,
        "residual": True,
        "base_policy": str(out / "base.pt"),
        "residual_scale": config.residual_scale,
    }
    return {
        name: LearningTask(name, flags, config.steps, config.eval_every, config.seeds, "success_rate", ())
        for name, flags in (("residual", residual), ("rlpd", common))
    }


def run(
    config: BenchResidualConfig, progress: bool = True, extra_flags: dict[str, Any] | None = None
) -> dict[str, Any]:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    check_settings(config, out)
    base = prepare_base(config, out)
    tasks = method_tasks(config, out, extra_flags)
    runs = [(task, seed) for seed in range(config.seeds) for task in tasks.values()]
    train_all(runs, out, config.jobs, "bench residual", progress)
    paths = {name: [out / name / f"seed{s}" for s in range(config.seeds)] for name in METHODS}
    report = summarize(config, base, paths)
    report["plot"] = str(plot(report, out / "residual.png"))
    (out / "residual.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def summarize(
    config: BenchResidualConfig, base: dict[str, Any], runs: dict[str, list[Path]]
) -> dict[str, Any]:
    """Per method and seed: the eval curve and when success first reached 90%; the ratio of the
    medians of those first-reach steps (residual / RLPD) against the 0.5 bar. A method that never
    reached 90% within the budget makes its median None and the ratio None (said in `verdict`)."""
    methods = {}
    for name, paths in runs.items():
        evals = [[row for row in run_rows(path) if is_eval_row(row)] for path in paths]
        reach = [stability(rows)["first_reach_steps"] for rows in evals]
        methods[name] = {
            "first_reach_steps": reach,
            "median_first_reach": statistics.median(reach) if None not in reach else None,
            "final_success": [rows[-1]["success_rate"] if rows else None for rows in evals],
            "curves": [[[row["env_steps"], row["success_rate"]] for row in rows] for rows in evals],
        }
    residual, rlpd = methods["residual"]["median_first_reach"], methods["rlpd"]["median_first_reach"]
    ratio = round(residual / rlpd, 3) if residual is not None and rlpd is not None else None
    if ratio is not None:
        verdict = f"residual reached {REACH:.0%} in {ratio:.2f}x RLPD's env steps (bar: {TARGET_RATIO}x)"
    elif residual is not None:
        verdict = f"RLPD did not reach {REACH:.0%} within {config.steps} steps on every seed"
    else:
        verdict = f"residual did not reach {REACH:.0%} within {config.steps} steps on every seed"
    return {
        "task": config.task,
        "steps": config.steps,
        "seeds": config.seeds,
        "demos": config.demos,
        "base": {
            "policy": config.base_policy,
            "success_rate": base["success_rate"],
            "success_ci": base.get("success_ci"),
            "episodes": base["episodes"],
            "model_hash": base.get("model_hash"),
        },
        "methods": methods,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "met": ratio is not None and ratio <= TARGET_RATIO,
        "verdict": verdict,
    }


def plot(report: dict[str, Any], path: Path) -> Path:
    """Every seed's success curve per method, the base's validated success as a dashed line, the 90%
    line dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"residual": "tab:blue", "rlpd": "tab:orange"}
    labels = {"residual": "residual RL over the BC base", "rlpd": "RLPD from scratch (same demos)"}
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for name, method in report["methods"].items():
        for seed, curve in enumerate(method["curves"]):
            if curve:
                steps, values = zip(*curve, strict=True)
                ax.plot(steps, values, color=colours[name], marker=".", alpha=0.9 - 0.25 * seed,
                        label=f"{labels[name]}, seed {seed}")  # fmt: skip
    base = report["base"]
    label = f"BC base ({base['policy']}): {base['success_rate']:.2f} over {base['episodes']} episodes"
    ax.axhline(base["success_rate"], color="tab:green", linestyle="--", label=label)
    ax.axhline(REACH, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="env steps", ylabel="success rate", ylim=(-0.05, 1.05),
           title=f"{report['task']}: {report['verdict']}")  # fmt: skip
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def table(report: dict[str, Any]) -> str:
    """What `realrl bench residual` prints without --json."""
    base = report["base"]
    lines = [f"{report['task']}: BC base ({base['policy']}) success {base['success_rate']:.2f} "
             f"over {base['episodes']} episodes"]  # fmt: skip
    for name, method in report["methods"].items():
        reach = ", ".join("-" if s is None else str(s) for s in method["first_reach_steps"])
        lines.append(f"  {name:9} first >= {REACH:.0%} at ({reach}), median {method['median_first_reach']}")
    lines.append(f"  {report['verdict']}")
    return "\n".join(lines)
