"""`realrl learner` (the GPU box) and `realrl train --actors N` (one learner and N actor processes on
this machine over loopback, the same code as two machines). The learner reuses the in-process
Trainer's replay, agent, metrics and checkpoints; its env steps come from actors through the
LearnerServer, and it learns at most `utd` updates per env step received.

Checkpoints add the ingest state (per-session dedup counters, per-actor stats); records acked after
a checkpoint live in the journal, which a resumed learner replays, so `--resume` after a SIGKILL
stores every acked step exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from formats.config import to_dict
from formats.wire import RecordSpec, pack_weights
from learner.configs import ServerConfig, TrainConfig
from learner.ingest import Ingest
from learner.journal import Journal
from learner.server import LearnerServer
from realrl.commands.signals import stop_on_signals
from realrl.commands.train import Trainer, evaluate, plot_learning_curve


class LearnerRun(Trainer):
    in_process = False

    def __init__(
        self,
        config: TrainConfig,
        out: str | Path,
        server: ServerConfig,
        *,
        resume: bool = False,
        progress: bool = True,
    ):
        self._saved_ingest: dict | None = None
        super().__init__(config, out, resume=resume, progress=progress)
        spec = RecordSpec(
            state_dim=self.online_buffer.state_dim,
            action_dim=self.online_buffer.action_dim,
            image_shapes=self.online_buffer.image_shapes,
        )
        self.journal = Journal(self.out / "replay" / "journal", checksums=server.fsync_journal)
        self.ingest = Ingest(spec, self.online_buffer, self.journal)
        if resume:
            self._replay_journal()
        else:
            self.journal.clear()  # records of a run that died before its first checkpoint
        self.env_steps = self.ingest.steps_stored
        welcome = {
            "task": self.config.task,
            "obs": self.config.obs,
            "agent": to_dict(self.config.agent),
            "random_steps": self.random_steps,
        }
        self.server = LearnerServer(server, self.ingest, welcome)
        self._published = (-1, 0.0)  # (updates, time) of the last weight push
        self._actor_steps: dict[str, int] = {}

    def _replay_journal(self) -> None:
        start = 0
        if self._saved_ingest is not None:
            self.ingest.load_state_dict(self._saved_ingest)
            start = self._saved_ingest["journal_start"]
        self.ingest.replay_journal(start)
        self.ingest.end_all_sessions()

    # -- checkpoint hooks ------------------------------------------------------------------------
    def snapshot_replay(self) -> dict:
        with self.ingest.lock:  # the buffer and the dedup counters must agree
            state = super().snapshot_replay()
            state["ingest"] = self.ingest.state_dict()
            self.journal.rotate()
        return state

    def checkpoint_counters(self, replay_state: dict) -> dict:
        return {
            **super().checkpoint_counters(replay_state),
            "journal_start": replay_state["ingest"]["journal_start"],
        }

    def prune_logs(self, oldest_counters: dict) -> None:
        super().prune_logs(oldest_counters)
        self.journal.prune(oldest_counters["journal_start"])

    def restore_extra(self, state: dict) -> None:
        self._saved_ingest = state["ingest"]

    # -- the loop --------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None, on_ready=None) -> dict:
        """Serve and learn until `steps` env steps arrived or `stop` is set (SIGINT/SIGTERM); then
        checkpoint. `on_ready(endpoint)` runs once the socket is bound (to start local actors)."""
        endpoint = self.server.start()
        try:
            finished = self._serve_and_learn(stop or threading.Event(), endpoint, on_ready)
        except BaseException:
            self.server.stop("learner stopping")  # the actors keep their steps and wait for a restart
            raise
        self.env_steps = self.ingest.steps_stored  # the actors' last records, stored while finishing
        self.save_checkpoint()
        self.server.stop("done" if finished else "learner stopping")
        self.journal.close()
        self.tensorboard.close()
        evals = [r for r in self.rows if "eval_return" in r]
        return {
            "out": str(self.out),
            **self.counters(),
            "endpoint": endpoint,
            "final_success_rate": evals[-1]["success_rate"] if evals else None,
            "final_eval_return": evals[-1]["eval_return"] if evals else None,
            "actors": self.ingest.state_dict()["actors"],  # cumulative counters
        }

    def _serve_and_learn(self, stop: threading.Event, endpoint: str, on_ready) -> bool:
        """The loop; True when `steps` env steps arrived (training finished)."""
        c = self.config
        self.publish_weights()
        if on_ready is not None:
            on_ready(endpoint)
        metrics, update_clock = {}, (time.monotonic(), self.updates)
        marks = {name: self._next_mark(every) for name, every in self._cadences().items()}
        bar = tqdm(
            total=c.steps, initial=self.env_steps, unit="step", desc="learner", disable=not self.progress
        )
        finished = False
        with open(self.out / "metrics.jsonl", "a") as log:
            while not stop.is_set():
                if self.server.error is not None:
                    raise RuntimeError(
                        f"the learner server failed: {self.server.error}"
                    ) from self.server.error
                bar.update(self.ingest.steps_stored - self.env_steps)
                self.env_steps = self.ingest.steps_stored
                if self.env_steps >= c.steps:
                    finished = True
                    break
                if self._may_learn():
                    metrics = self.learn_step()
                else:
                    time.sleep(0.002)  # waiting for actors' data
                self._maybe_publish()
                if self.env_steps >= marks["log"] and metrics:
                    marks["log"] = self._next_mark(c.log_every)
                    row = self.log_training(metrics, update_clock)
                    update_clock = (time.monotonic(), self.updates)
                    self.write_row(log, row)
                    bar.set_postfix(updates=self.updates, actors=len(self.server.live_actors()))
                if self.env_steps >= marks["eval"]:
                    marks["eval"] = self._next_mark(c.eval_every)
                    self._evaluate(log, bar)
                if self.env_steps >= marks["checkpoint"]:
                    marks["checkpoint"] = self._next_mark(c.checkpoint_every)
                    self.save_checkpoint()
            if finished:
                self._evaluate(log, bar)
                self._finish_actors()
        bar.close()
        return finished

    def _cadences(self) -> dict[str, int]:
        c = self.config
        return {"log": c.log_every, "eval": c.eval_every, "checkpoint": c.checkpoint_every}

    def _next_mark(self, every: int) -> int:
        return (self.env_steps // every + 1) * every

    def _may_learn(self) -> bool:
        c = self.config
        if self.env_steps < c.learning_starts or len(self.demo_buffer) + len(self.online_buffer) == 0:
            return False
        return self.updates < c.utd * (self.env_steps - c.learning_starts + 1)

    def _evaluate(self, log, bar) -> None:
        row = {**self.counters(), **evaluate(self.eval_env, self.agent, self.config.eval_episodes, 1_000_000)}
        self.write_row(log, row)
        plot_learning_curve(self.rows, self.out / "learning_curve.png")
        bar.set_postfix(success=row["success_rate"], eval_return=f"{row['eval_return']:.1f}")

    def _finish_actors(self, wait_s: float = 15.0) -> None:
        """Tell the actors training is over and give them time to deliver their last records."""
        self.server.finish()
        deadline = time.monotonic() + wait_s
        while self.server.live_actors() and time.monotonic() < deadline:
            time.sleep(0.05)

    # -- weights -----------------------------------------------------------------------------------
    def _maybe_publish(self) -> None:
        updates, when = self._published
        due = self.updates - updates >= self.config.weights_every
        if self.updates > updates and (due or time.monotonic() - when >= self.config.weights_every_s):
            self.publish_weights()

    def publish_weights(self) -> None:
        """Policy + encoder only, packed into one frame; version = updates so far."""
        tensors = {
            name: t.detach().float().cpu().numpy() if t.is_floating_point() else t.detach().cpu().numpy()
            for name, t in self.agent.policy_state_dict().items()
        }
        manifest, blob = pack_weights(tensors)
        self.server.publish(self.updates, manifest, blob)
        self._published = (self.updates, time.monotonic())

    def log_training(self, metrics, update_clock) -> dict:
        self.episodes = sum(stats.episodes for stats in list(self.ingest.actors.values()))
        row = super().log_training(metrics, update_clock)
        elapsed = time.monotonic() - update_clock[0]
        with self.ingest.lock:
            row.update(self.ingest.metrics(self.server.weights_version, elapsed, self._actor_steps))
        row["live_actors"] = len(self.server.live_actors())
        finished = [
            (stats["episode_return"], stats["success_rate"])
            for stats in row["actors"].values()
            if "success_rate" in stats
        ]
        if finished:
            row["train_episode_return"] = float(np.mean([r for r, _ in finished]))
            row["train_success_rate"] = float(np.mean([s for _, s in finished]))
        return row


def actor_command(config: TrainConfig, endpoint: str, index: int, out: Path) -> list[str]:
    """The `realrl actor` command line of local actor number `index`."""
    return [
        sys.executable, "-m", "realrl.cli", "actor",
        "--task", config.task,
        "--obs", config.obs,
        "--image-size", str(config.image_size),
        "--learner", endpoint,
        "--actor-id", f"actor-{index}",
        "--spool", str(out / "spool" / f"actor-{index}"),
        "--seed", str(config.seed * 100 + index),
        "--control-hz", str(config.actor_hz),
        "--json",
    ]  # fmt: skip


def train_with_actors(
    config: TrainConfig, out: str | Path, *, resume: bool = False, progress: bool = True
) -> dict:
    """`realrl train --actors N`: this process is the learner on a free loopback port; N actor
    processes stream to it. Their logs and final JSON lines go to <out>/actors/."""
    out = Path(out)
    run = LearnerRun(config, out, ServerConfig(bind="tcp://127.0.0.1:*"), resume=resume, progress=progress)
    (out / "actors").mkdir(exist_ok=True)
    processes: list[subprocess.Popen] = []

    def start_actors(endpoint: str) -> None:
        for index in range(config.actors):
            with open(out / "actors" / f"actor-{index}.log", "ab") as log_file:
                processes.append(
                    subprocess.Popen(
                        actor_command(config, endpoint, index, out),
                        stdout=subprocess.PIPE,
                        stderr=log_file,
                        start_new_session=True,  # a Ctrl-C reaches the learner, which then stops them
                    )
                )

    try:
        with stop_on_signals() as stop:
            summary = run.run(stop, on_ready=start_actors)
    finally:
        finished = run.env_steps >= config.steps
        finals = [_stop_actor(p, finished) for p in processes]
    summary["actor_processes"] = finals
    return summary


def _stop_actor(process: subprocess.Popen, finished: bool, wait_s: float = 20.0) -> dict | None:
    """The actor's final JSON line. After a finished run it stops by itself (the learner said so);
    otherwise it gets SIGTERM, and SIGKILL if it does not exit."""
    if not finished:
        process.terminate()
    try:
        stdout, _ = process.communicate(timeout=wait_s)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, _ = process.communicate()
    lines = [line for line in stdout.decode(errors="replace").splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None
