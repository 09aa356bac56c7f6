import json
import os

import pytest

from learner.configs import SACConfig, TrainConfig
from realrl.commands.train import Trainer


def tiny_config(steps: int) -> TrainConfig:
    return TrainConfig(
        task="PickCube",
        steps=steps,
        demo_episodes=2,
        learning_starts=50,
        batch_size=32,
        buffer_capacity=2000,
        eval_every=100,
        eval_episodes=1,
        log_every=50,
        checkpoint_every=100,
        agent=SACConfig(hidden=(32, 32), critics=2),
    )


def read_rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_train_writes_the_run_directory_and_resumes(tmp_path):
    out = tmp_path / "run"
    summary = Trainer(tiny_config(200), out, progress=False).run()
    assert summary["env_steps"] == 200 and summary["updates"] == 151  # updates from step 50 on, UTD 1
    rows = read_rows(out)
    assert all({"env_steps", "updates", "wall_s"} <= set(r) for r in rows)
    evals = [r for r in rows if "success_rate" in r]
    assert [r["env_steps"] for r in evals] == [100, 200]
    assert all(0.0 <= r["success_rate"] <= 1.0 and "eval_return" in r for r in evals)
    train_rows = [r for r in rows if "critic_loss" in r]
    assert [r["env_steps"] for r in train_rows] == [50, 100, 150, 200]
    assert json.loads((out / "config.json").read_text())["task"] == "realrl/PickCube-v0"
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert os.readlink(out / "checkpoints" / "latest") == "step_000000200"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "latest",
        "step_000000100",
        "step_000000200",
    ]
    assert (out / "demos" / "manifest.json").exists()

    resumed = Trainer(tiny_config(300), out, resume=True, progress=False)
    assert (resumed.env_steps, resumed.updates) == (200, 151)
    assert len(resumed.online_buffer) == 200  # every env step stored is one transition
    summary = resumed.run()
    assert summary["env_steps"] == 300 and summary["updates"] == 251
    steps = [r["env_steps"] for r in read_rows(out)]
    assert steps == sorted(steps) and steps[-1] == 300


def test_actor_processes_are_not_available_yet(tmp_path):
    with pytest.raises(ValueError, match="--actors 0"):
        Trainer(TrainConfig(actors=2), tmp_path)
