"""The training loop with the in-process actor (`realrl train --actors 0`), wired as the command
does: the run directory, resume, the UTD schedule, checkpoints, metrics and TensorBoard."""

import json
import os
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from learner.configs import SACConfig, TrainConfig
from realrl.commands.train import build_loop


def tiny_config(steps: int, algorithm: str = "sac", **agent) -> TrainConfig:
    return TrainConfig(
        algorithm=algorithm,
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
        agent=SACConfig(hidden=(32, 32), critics=2, **agent),
    )


def read_rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_train_writes_the_run_directory_and_resumes(tmp_path):
    out = tmp_path / "run"
    trainer = build_loop(tiny_config(200), out, progress=False)
    summary = trainer.run()
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

    # The state normaliser was fitted once, on the demos, before the first update.
    demo_states = trainer.replay.demo.stored_states()
    torch.testing.assert_close(trainer.algorithm.encoder.state_mean, demo_states.mean(dim=0))

    resumed = build_loop(tiny_config(300), out, resume=True, progress=False)
    assert (resumed.env_steps, resumed.updates) == (200, 151)
    assert len(resumed.replay.online) == 200  # every env step stored is one transition
    summary = resumed.run()
    assert summary["env_steps"] == 300 and summary["updates"] == 251
    steps = [r["env_steps"] for r in read_rows(out)]
    assert steps == sorted(steps) and steps[-1] == 300


def test_the_in_process_actor_needs_actors_0(tmp_path):
    with pytest.raises(ValueError, match="--actors 0"):
        build_loop(TrainConfig(actors=2), tmp_path)


@pytest.mark.parametrize("hybrid", [False, True], ids=["sac", "hybrid"])
def test_resume_gives_the_same_next_updates_as_an_uninterrupted_run(tmp_path, hybrid):
    """Checkpoint at step 120, then 10 more updates in the same process; a fresh trainer resumed
    from that checkpoint (as after a SIGKILL) must produce identical losses: networks, targets,
    optimisers, temperature, generators and the replay (restored from its incremental log)."""
    out = tmp_path / "run"
    config = replace(tiny_config(120, "hybrid-gripper" if hybrid else "sac"), checkpoint_every=60)
    uninterrupted = build_loop(config, out, progress=False)
    uninterrupted.run()
    expected = [uninterrupted.learn_step() for _ in range(10)]
    if hybrid:  # demos' gripper commands became tri-state choices: the expert closes once, then stays
        labels = uninterrupted.replay.demo.action[:, -1].unique().tolist()
        assert labels == [0.0, 1.0]
    resumed = build_loop(config, out, resume=True, progress=False)
    assert (resumed.env_steps, resumed.updates) == (120, 71)
    got = [resumed.learn_step() for _ in range(10)]
    for a, b in zip(expected, got, strict=True):
        assert {k: float(v) for k, v in a.items()} == {k: float(v) for k, v in b.items()}
    for name, value in uninterrupted.algorithm.state_dict().items():
        assert torch.equal(value, resumed.algorithm.state_dict()[name]), name
    # The checkpoint holds no replay slots: they live in the log's segments. 60 steps + 1 start
    # obs, then slot 60 again (its step record came later) to 120 steps + 2 starts (the 100-step
    # time limit ended the first episode).
    segments = sorted(p.name for p in (out / "replay" / "online").iterdir())
    assert segments == ["segment_000000000000_000000000061.pt", "segment_000000000060_000000000122.pt"]
    # Every checkpoint holds its policy, and its critic where that scores whole actions.
    files = sorted(p.name for p in (out / "checkpoints" / "latest").iterdir())
    assert files == (["counters.json", "policy.pt", "state.pt"] if hybrid else
                     ["counters.json", "critic.pt", "policy.pt", "state.pt"])  # fmt: skip


def test_an_existing_run_needs_resume(tmp_path):
    out = tmp_path / "run"
    build_loop(tiny_config(60), out, progress=False).run()
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match="--resume"):
        build_loop(tiny_config(60), out, progress=False)
    assert (out / "metrics.jsonl").read_text() == before


def test_tensorboard_events_match_the_metrics_rows(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    build_loop(tiny_config(100), out, progress=False).run()
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    rows = read_rows(out)
    evals = [(r["env_steps"], r["eval_return"]) for r in rows if "eval_return" in r]
    logged = [(e.step, e.value) for e in events.Scalars("eval/eval_return")]
    assert logged == [(step, pytest.approx(value)) for step, value in evals]
    losses = [(r["env_steps"], r["critic_loss"]) for r in rows if "critic_loss" in r]
    assert [(e.step, e.value) for e in events.Scalars("train/critic_loss")] == [
        (step, pytest.approx(value)) for step, value in losses
    ]


def test_gymnasium_env_trains_without_demos(tmp_path):
    config = replace(
        tiny_config(120),
        env="gymnasium:Pendulum-v1",
        eval_every=120,
        learning_starts=60,
        checkpoint_every=120,
    )
    trainer = build_loop(config, tmp_path / "run", progress=False)
    assert trainer.source.explore_steps == 60 and len(trainer.replay.demo) == 0
    summary = trainer.run()
    assert not (tmp_path / "run" / "demos").exists()
    (row,) = [r for r in read_rows(tmp_path / "run") if "eval_return" in r]
    # Pendulum has no success signal; its per-step reward lies in [-16.27, 0] for 200 steps.
    assert row["success_rate"] is None and -16.28 * 200 <= row["eval_return"] < 0
    assert summary["final_eval_return"] == row["eval_return"]
    with pytest.raises(ValueError, match="gymnasium:<ID>"):
        build_loop(replace(config, env="Pendulum-v1"), tmp_path / "other", progress=False)


def test_replay_memory_estimate_and_device_choice():
    from learner.loop import replay_bytes, resolve_replay_device
    from learner.replay import ReplayBuffer

    shapes = {"front": (16, 16, 3), "wrist": (16, 16, 3)}
    # Per slot: float32 state (14), action (4) and reward; 3 bool flags; int64 episode and record
    # ids; frames.
    assert replay_bytes(100, 14, 4, shapes) == 100 * (4 * 19 + 3 + 16 + 2 * 768)
    actual = ReplayBuffer(100, 14, 4, shapes).nbytes
    assert abs(actual - replay_bytes(100, 14, 4, shapes)) <= 100  # plus the host mirror of `valid`
    assert resolve_replay_device("auto", torch.device("cpu"), 10**12).type == "cpu"
    assert resolve_replay_device("cpu", torch.device("cpu"), 1).type == "cpu"


def test_training_stops_after_consecutive_nonfinite_updates_with_good_weights(tmp_path, caplog):
    from learner.loop import TrainingError

    trainer = build_loop(
        replace(tiny_config(300), max_nonfinite_updates=10), tmp_path / "run", progress=False
    )
    trainer.replay.demo.reward[:] = float("nan")  # corrupt storage behind the buffer's checks
    with pytest.raises(TrainingError, match="consecutive updates had NaN/inf losses"):
        trainer.run()
    # Updates start at step 50; the row at step 100 sees 51 skipped in a row and stops there.
    assert trainer.env_steps == 100
    assert "update(s) skipped for NaN/inf" in caplog.text
    assert all(torch.isfinite(v).all() for v in trainer.algorithm.state_dict().values())
    assert os.readlink(tmp_path / "run" / "checkpoints" / "latest") == "step_000000100"


class BurstSource:
    """A step source (learner.sources.StepSource) that delivers `burst` synthetic steps per call,
    like sim actors that outrun the learner; sets `stop_event` (a signal) on call `stop_after`."""

    kind = "a burst of synthetic steps"

    def __init__(self, online, burst: int, stop_event=None, stop_after: int | None = None):
        self.online, self.burst, self.stop_event, self.stop_after = online, burst, stop_event, stop_after
        self.env_steps, self.calls, self.finished, self.stopped = 0, 0, False, False
        self.rng = np.random.default_rng(0)

    def fresh_start(self):
        pass

    def restore(self, state, counters):
        raise AssertionError("not resumed")

    def start(self, policy, updates):
        self.online.start_episode({"state": self.rng.normal(size=3).astype(np.float32)})

    def collect(self, limit, wait):
        assert not self.finished, "no steps after finish()"
        self.calls += 1
        self.arrive(self.burst)
        if self.stop_event is not None and self.calls == self.stop_after:
            self.stop_event.set()

    def arrive(self, steps: int) -> None:
        for _ in range(steps):
            next_obs = {"state": self.rng.normal(size=3).astype(np.float32)}
            self.online.add(self.rng.uniform(-1, 1, size=2).astype(np.float32), 0.0, False, False, next_obs)
            self.env_steps += 1

    def after_update(self, policy, updates):
        pass

    def row_metrics(self, elapsed_s):
        return {"burst_calls": self.calls}

    def finish(self):
        self.finished = True

    def stop(self):
        self.stopped = True

    def close(self, finished):
        pass

    def summary(self):
        return {}

    def consistent(self):
        import contextlib

        return contextlib.nullcontext()

    def checkpoint_state(self):
        return {}, {}

    def prune(self, oldest_counters):
        pass


def burst_loop(tmp_path, source_factory, **overrides):
    from learner.loop import TrainingLoop, build_replay
    from learner.sac import SACAlgorithm
    from policies import PolicySpec

    config = replace(
        tiny_config(200), utd=3, critic_actor_ratio=2, learning_starts=50, eval_every=100, **overrides
    )
    replay = build_replay(config, 3, 2, {}, None, tmp_path, torch.device("cpu"))
    algorithm = SACAlgorithm(config.agent, PolicySpec(3, 2), seed=0)
    actor_updates = []
    update = algorithm.update
    algorithm.update = lambda batch, ratio, **kw: actor_updates.append(ratio) or update(batch, ratio, **kw)
    source = source_factory(replay.online)

    def evaluate(policy):
        return {"success_rate": None, "eval_return": 0.0}

    loop = TrainingLoop(config, tmp_path, algorithm, replay, source, evaluate, progress=False)
    return loop, source, actor_updates


def test_a_source_that_outruns_the_learner_gets_every_update_it_is_owed(tmp_path):
    """45 steps arrive per pass, 225 by the time 200 are reached: the loop keeps learning until it
    made utd = 3 critic updates for every env step from step 50 on, 2 per actor update."""
    loop, source, actor_updates = burst_loop(tmp_path, lambda online: BurstSource(online, burst=45))
    summary = loop.run()
    assert source.calls == 5 and source.finished and not source.stopped
    assert summary["env_steps"] == 225
    assert summary["updates"] == 3 * (225 - 50 + 1) == 528
    assert actor_updates == [2] * 264  # critic-to-actor ratio 2, apart from the UTD throttle
    rows = read_rows(tmp_path)
    assert rows[-1] == {**rows[-1], "env_steps": 225, "updates": 528, "final": True, "burst_calls": 5}
    assert [r["env_steps"] for r in rows if "eval_return" in r] == [135, 225]  # marks 100, 200; final
    assert os.readlink(tmp_path / "checkpoints" / "latest") == "step_000000225"


class ArrivingSource(BurstSource):
    """Steps also arrive between collect() calls, as the learner server's thread stores them."""

    def collect(self, limit, wait):
        super().collect(limit, wait)
        self.looks = 0

    @property
    def env_steps(self):
        self.looks = getattr(self, "looks", -1) + 1
        if self.looks == 2:  # one more step lands after the loop's first look since collect()
            self._steps += 1
        return self._steps

    @env_steps.setter
    def env_steps(self, value):
        self._steps = value


def test_the_progress_bar_counts_steps_that_arrive_between_collects(tmp_path, capsys):
    """It showed 4342 of a make demo's 10025 steps: it added what arrived during collect() only."""
    loop, source, _ = burst_loop(tmp_path, lambda online: ArrivingSource(online, burst=45))
    loop.progress = True
    summary = loop.run()
    final_bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert re.search(rf"train: (\S+ )?{summary['env_steps']}(/200|step) ", final_bar), final_bar
    assert summary["env_steps"] > 225  # the late arrivals were real steps


def test_a_stop_checkpoints_and_ends_the_metrics_with_the_final_counts(tmp_path):
    import threading

    stop = threading.Event()
    loop, source, _ = burst_loop(tmp_path, lambda online: BurstSource(online, 30, stop, stop_after=4))
    summary = loop.run(stop)
    assert source.stopped and not source.finished
    # The stop came with the 4th burst: no update for it; those owed for 90 steps were made (2 a step).
    assert summary["env_steps"] == 120 and summary["updates"] == 3 * (90 - 50 + 1) + 1 == 124
    rows = read_rows(tmp_path)
    assert rows[-1]["final"] and (rows[-1]["env_steps"], rows[-1]["updates"]) == (120, summary["updates"])
    assert os.readlink(tmp_path / "checkpoints" / "latest") == "step_000000120"


class OutrunningSource(BurstSource):
    """Sim actors faster than the learner (pixels on a CPU): besides each collect's burst, 4 steps
    land, from the learner server's thread, during every learn step."""

    def after_update(self, policy, updates):
        self.arrive(4)


def test_rows_evals_and_checkpoints_keep_their_marks_when_actors_outrun_the_learner(tmp_path):
    """Marks every 50 (rows) and 100 env steps (eval, checkpoint). Bursts of 45 bring 90 steps: 123
    updates owed, but after 3 learn steps (6 updates) 102 steps have arrived, so the eval and the
    checkpoint are made at 102, not once the learner has caught up (a demo-pixels run evaluated at
    1509, then 6633). The 200th step lands with 10 updates made: the final eval and checkpoint wait
    for all 3 * 151 owed (454, 2 per learn step), or the run's last weights were never saved."""
    loop, source, _ = burst_loop(tmp_path, lambda online: OutrunningSource(online, burst=45))
    summary = loop.run()
    assert source.calls == 4 and source.finished
    assert (summary["env_steps"], summary["updates"]) == (200, 454)
    rows = read_rows(tmp_path)
    evals = [(r["env_steps"], r["updates"]) for r in rows if "eval_return" in r]
    assert evals == [(102, 6), (200, 454)]
    training = [(r["env_steps"], r["updates"]) for r in rows if "critic_loss" in r]
    assert training == [(102, 6), (151, 8), (200, 454)]
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step_000000102", "step_000000200"]
    latest = json.loads((checkpoints / "latest" / "counters.json").read_text())
    assert (latest["env_steps"], latest["updates"]) == (200, 454)


def test_a_stop_while_paying_the_owed_updates_checkpoints_what_was_made(tmp_path, caplog):
    """Ctrl-C during the catch-up after the last step: it ends there (it used to run on for as long
    as the updates took), checkpointed at 100 updates with 353 still owed for a --resume; no eval."""
    import threading

    stop = threading.Event()
    loop, source, _ = burst_loop(tmp_path, lambda online: OutrunningSource(online, burst=45))
    learn_step = loop.learn_step

    def learn_step_then_stop_at_100():
        metrics = learn_step()
        if source.finished and loop.updates == 100:
            stop.set()
        return metrics

    loop.learn_step = learn_step_then_stop_at_100
    with caplog.at_level("WARNING", logger="learner.loop"):
        summary = loop.run(stop)
    assert (summary["env_steps"], summary["updates"]) == (200, 100)
    assert "stopped with 353 updates still owed" in caplog.text
    rows = read_rows(tmp_path)
    assert [r["env_steps"] for r in rows if "eval_return" in r] == [102]
    assert rows[-1]["final"] and (rows[-1]["env_steps"], rows[-1]["updates"]) == (200, 100)
    latest = json.loads((tmp_path / "checkpoints" / "latest" / "counters.json").read_text())
    assert (latest["env_steps"], latest["updates"]) == (200, 100)


def test_a_later_checkpoint_at_the_same_env_step_gets_a_new_name(tmp_path):
    """The catch-up resumed: 200 env steps again, 454 updates. Replacing step_000000200 in place
    would leave `latest` dangling for a moment; the new one sorts after it and pruning keeps order."""
    from learner.checkpoints import Checkpoints

    checkpoints = Checkpoints(tmp_path, keep=2)
    for env_steps, updates in ((100, 50), (200, 100), (200, 454)):
        counters = {"env_steps": env_steps, "updates": updates}
        checkpoints.save(
            env_steps,
            {"weights": torch.zeros(1)},
            counters,
            lambda directory: (directory / "policy.pt").write_text("p"),
        )
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["latest", "step_000000200", "step_000000200-u000000454"]
    assert os.readlink(tmp_path / "latest") == "step_000000200-u000000454"
    assert checkpoints.load_latest(torch.device("cpu"))[1] == {"env_steps": 200, "updates": 454}


def test_a_replay_that_would_outgrow_the_machines_memory_is_named_at_the_start(caplog):
    from learner.loop import warn_if_replay_outgrows_memory

    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    per_slot = 131_000  # two 128x128 frames and their cached maps
    big = replace(tiny_config(10), steps=10**9, buffer_capacity=10**9)
    with caplog.at_level("WARNING", logger="learner.loop"):
        warn_if_replay_outgrows_memory(big, per_slot)
    fits = int(0.8 * physical / per_slot)
    assert f"killed near step {fits}" in caplog.text and f"--buffer-capacity {fits} or less" in caplog.text
    caplog.clear()
    # A long run with a ring small enough, or a short run with a big ring, never fills it: no warning.
    for config in (replace(big, buffer_capacity=fits // 2), replace(big, steps=fits // 2)):
        with caplog.at_level("WARNING", logger="learner.loop"):
            warn_if_replay_outgrows_memory(config, per_slot)
        assert caplog.text == ""
