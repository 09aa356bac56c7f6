"""`realrl bench learning`'s bookkeeping, on hand-written eval rows and one tiny real suite: values at
budgets, ratios against references, first reach of 90% and whether it holds, flags handed to
`realrl train`, and that finished runs are read back and stopped ones resumed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks import learning
from benchmarks.learning import LearningTask, command_line, stability, task_report, value_at


def evals(*points: tuple[int, float]) -> list[dict]:
    return [{"env_steps": s, "success_rate": v, "eval_return": v} for s, v in points]


def test_stability_first_reach_and_the_lowest_after_it():
    rows = evals((1000, 0.2), (2000, 0.95), (3000, 0.85), (4000, 1.0))
    assert stability(rows) == {"first_reach_steps": 2000, "min_after_reach": 0.85, "holds": True}
    dips = evals((1000, 0.9), (2000, 0.75), (3000, 1.0))
    assert stability(dips) == {"first_reach_steps": 1000, "min_after_reach": 0.75, "holds": False}
    assert stability(evals((1000, 0.5))) == {
        "first_reach_steps": None,
        "min_after_reach": None,
        "holds": False,
    }


def test_value_at_takes_the_row_at_exactly_the_budget():
    rows = evals((2000, 10.0), (4000, 30.0))
    assert value_at(rows, "eval_return", 4000) == 30.0 and value_at(rows, "eval_return", 3000) is None


def write_run(run, rows) -> None:
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_task_report_against_a_reference(tmp_path):
    task = LearningTask("T", {}, 4000, 2000, 2, "eval_return", (2000, 4000), {4000: 1000.0})
    train_row = {"env_steps": 1000, "updates": 500, "wall_s": 1.0, "updates_per_s": 50.0}
    final = {"env_steps": 4000, "updates": 3500, "wall_s": 80.0, "final": True}
    write_run(tmp_path / "s0", [train_row, *evals((2000, 100.0), (4000, 900.0)), final])
    with_ci = [{**row, "eval_return_ci": [row["eval_return"] - 50, row["eval_return"] + 50]}
               for row in evals((2000, 300.0), (4000, 800.0))]  # fmt: skip
    write_run(tmp_path / "s1", [{**train_row, "updates_per_s": 70.0}, *with_ci, final])
    report = task_report(task, [tmp_path / "s0", tmp_path / "s1"])
    assert report["budgets"]["2000"] == {"per_seed": [100.0, 300.0], "mean": 200.0}
    assert report["budgets"]["4000"] == {
        "per_seed": [900.0, 800.0], "mean": 850.0, "reference": 1000.0, "ratio": 0.85, "within_15pct": True
    }  # fmt: skip
    assert report["updates_per_s_median"] == 60.0 and report["wall_s"] == [80, 80]
    assert report["curves"][1] == [[2000, 300.0], [4000, 800.0]]
    assert report["intervals"] == [[], [[2000, 250.0, 350.0], [4000, 750.0, 850.0]]]
    text = learning.table({"tasks": [report]})
    assert "850" in text and "0.85" in text and "(900, 800)" in text


def test_flags_handed_to_realrl_train(tmp_path):
    task = LearningTask("T", {"env": "gymnasium:X-v0", "agent.critic_layer_norm": False, "utd": 10},
                        5000, 1000, 1, "eval_return", (5000,))  # fmt: skip
    argv = command_line(task, 3, tmp_path / "r", threads=1, resume=True)
    assert argv[:4] == [sys.executable, "-m", "realrl.cli", "train"]
    joined = " ".join(argv[4:])
    for part in ("--env gymnasium:X-v0", "--no-agent.critic-layer-norm", "--utd 10", "--steps 5000",
                 "--eval-every 1000", "--seed 3", "--threads 1", "--checkpoint-every 5000"):  # fmt: skip
        assert part in joined, part
    assert argv[-1] == "--resume"


def test_a_tiny_suite_trains_then_reads_back_and_resumes_what_stopped(tmp_path, monkeypatch):
    task = LearningTask(
        "Pendulum-v1",
        {"env": "gymnasium:Pendulum-v1", "learning_starts": 100, "eval_episodes": 1, "agent.hidden": 16},
        300, 150, 1, "eval_return", (150, 300), {300: -1000.0},
    )  # fmt: skip
    monkeypatch.setitem(learning.SUITES, "control", (task,))
    report = learning.run("control", tmp_path, progress=False)
    (entry,) = report["tasks"]
    assert [point[0] for point in entry["curves"][0]] == [150, 300]
    # Pendulum's return per 200-step episode lies in [-16.27 * 200, 0].
    assert all(-3255 <= v < 0 for v in entry["budgets"]["300"]["per_seed"])
    assert (tmp_path / "control.png").stat().st_size > 0
    assert json.loads((tmp_path / "control.json").read_text())["tasks"][0]["budgets"] == entry["budgets"]

    calls = []
    monkeypatch.setattr(subprocess, "call", lambda argv, **kw: calls.append(argv) or 0)
    again = learning.run("control", tmp_path, progress=False)
    assert calls == [] and again["tasks"][0]["budgets"] == entry["budgets"]  # read back, not retrained
    run = tmp_path / "Pendulum-v1" / "seed0"
    rows = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(r for r in rows if '"final"' not in r) + "\n")
    learning.run("control", tmp_path, progress=False, plot=False)
    assert len(calls) == 1 and calls[0][-1] == "--resume"  # stopped after a checkpoint: resumed
    with pytest.raises(ValueError, match="none of \\['Nope'\\] is in the control suite"):
        learning.run("control", tmp_path, tasks=["Nope"])
