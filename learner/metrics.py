"""The run's metrics: one JSON object per row in metrics.jsonl (always `env_steps`, `updates`,
`wall_s`; eval rows add `success_rate` and `eval_return`), the same numbers as TensorBoard scalars
(tensorboard/, `train/<name>` and `eval/<name>`), and learning_curve.png redrawn at every eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from formats.files import atomic_write


def is_eval_row(row: dict) -> bool:
    return "eval_return" in row


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


class MetricsWriter:
    """Appends rows to <out>/metrics.jsonl and TensorBoard. `resume_at`: the env steps of the
    checkpoint a run resumes from; rows logged after it are dropped (they will be logged again).
    A row's env steps are never below the previous row's (a plot's x axis never goes back).
    Files are touched only by the first row written: a loop built to inspect a run leaves it as is."""

    def __init__(self, out: Path, resume_at: int | None = None) -> None:
        self.out = out
        self.path = out / "metrics.jsonl"
        self.rows: list[dict] = []
        self._resume_at = resume_at
        if resume_at is not None:
            # A stopped run's final row is not final once it resumes: it writes its own.
            rows = read_rows(self.path)
            self.rows = [r for r in rows if r["env_steps"] <= resume_at and not r.get("final")]
        self._file = None
        self.tensorboard = None

    def _open(self) -> None:
        """Before the first row: drop what the resume drops, then append for the whole run."""
        if self._resume_at is not None:
            with open(self.path, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in self.rows)
        self._file = open(self.path, "a")  # noqa: SIM115 (open for the whole run, closed in close())
        from torch.utils.tensorboard import SummaryWriter

        self.tensorboard = SummaryWriter(self.out / "tensorboard", purge_step=self._resume_at or None)

    def write(self, row: dict) -> None:
        if self.rows and row["env_steps"] < self.rows[-1]["env_steps"]:
            raise RuntimeError(
                f"{self.path}: a row at {row['env_steps']} env steps after one at "
                f"{self.rows[-1]['env_steps']}; rows never go back"
            )
        if self._file is None:
            self._open()
        self.rows.append(row)
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        group = "eval" if is_eval_row(row) else "train"
        for name, value in row.items():
            if name != "env_steps" and isinstance(value, int | float):
                self.tensorboard.add_scalar(f"{group}/{name}", value, global_step=row["env_steps"])
        self.tensorboard.flush()

    def evals(self) -> list[dict]:
        return [r for r in self.rows if is_eval_row(r)]

    def plot(self) -> None:
        plot_learning_curve(self.rows, self.out / "learning_curve.png")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self.tensorboard.close()


def _band(ax, steps: list[int], intervals: list, color: str) -> None:
    """The 95% interval of each eval point as a shaded band (rows of older runs have none)."""
    if steps and all(interval is not None for interval in intervals):
        low, high = zip(*intervals, strict=True)
        ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0, label="95% interval")


def plot_learning_curve(rows: list[dict], path: Path) -> None:
    """Eval success rate and eval return against env steps, side by side (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [r for r in rows if is_eval_row(r)]
    fig, (ax_success, ax_return) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = [r["env_steps"] for r in evals]
    rates = [np.nan if r["success_rate"] is None else r["success_rate"] for r in evals]
    ax_success.plot(steps, rates, marker="o")
    _band(ax_success, steps, [r.get("success_ci") for r in evals], "tab:blue")
    ax_success.set(xlabel="env steps", ylabel="eval success rate", ylim=(-0.05, 1.05), title="success")
    ax_return.plot(steps, [r["eval_return"] for r in evals], marker="o", color="tab:orange")
    _band(ax_return, steps, [r.get("eval_return_ci") for r in evals], "tab:orange")
    ax_return.set(xlabel="env steps", ylabel="eval return", title="return")
    for ax in (ax_success, ax_return):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
