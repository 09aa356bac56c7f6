"""Step sources: what feeds the training loop env steps. The loop only calls these methods, so it
does not know whether the steps come from an env stepped in this process (actors.local.LocalActor,
`--actors 0`) or from actor processes over ZeroMQ (`IngestSource`, the learner server's ingest).
Both write transitions into the online replay buffer themselves; the loop reads `env_steps`."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from formats.wire import RecordSpec, pack_weights
from learner.configs import ServerConfig, TrainConfig
from learner.ingest import Ingest
from learner.journal import Journal
from learner.replay import ReplayBuffer
from learner.server import LearnerServer
from policies import Policy


class StepSource(Protocol):
    """What the loop calls. Implemented by IngestSource below and actors.local.LocalActor."""

    env_steps: int  # env steps stored in the online replay so far
    kind: str  # what feeds the run, in words; a run resumes only with a source of the same kind

    def fresh_start(self) -> None:
        """A new run (not resumed): forget anything a dead earlier run left behind."""

    def restore(self, state: dict[str, Any] | None, counters: dict[str, Any] | None) -> None:
        """Resume from a checkpoint's source state (after the replay was restored); None: a resumed
        run that died before its first checkpoint."""

    def start(self, policy: Policy, updates: int) -> None:
        """Training starts with this policy (`updates` made so far: its version)."""

    def collect(self, limit: int, wait: bool) -> None:
        """Store what is ready (at most up to `limit` env steps where the source decides); `wait`:
        the loop has nothing else to do, so a source may block briefly for new steps."""

    def after_update(self, policy: Policy, updates: int) -> None:
        """The policy changed (version `updates`)."""

    def row_metrics(self, elapsed_s: float) -> dict[str, Any]:
        """What the source adds to a training row (episodes, train success, per-actor stats)."""

    def finish(self) -> None:
        """`steps` env steps arrived: deliver the last ones, then produce no more."""

    def stop(self) -> None:
        """Stopped early (a signal, an error): produce no more; everything acked is stored."""

    def close(self, finished: bool) -> None:
        """After the final checkpoint."""

    def summary(self) -> dict[str, Any]:
        """What the source adds to the run's final summary."""

    def consistent(self) -> contextlib.AbstractContextManager:
        """Held while the replay and the source's state are snapshotted together."""

    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(state for state.pt, counters for counters.json, which pruning reads without state.pt)."""

    def prune(self, oldest_counters: dict[str, Any]) -> None:
        """Drop data not even the oldest kept checkpoint needs."""


def mean_episode_stats(finished: list[tuple[float, bool]]) -> dict[str, float]:
    """Training-episode return and success (stochastic policy) over episodes finished since the last row."""
    if not finished:
        return {}
    return {
        "train_episode_return": float(np.mean([r for r, _ in finished])),
        "train_success_rate": float(np.mean([s for _, s in finished])),
    }


class IngestSource:
    """Actor processes over ZeroMQ: the learner server stores their step records into the online
    replay (journaled first, so an ack means durable) and pushes weights on a cadence.

    Checkpoints add the ingest state (per-session dedup counters, per-actor stats); records acked
    after a checkpoint live in the journal, which a resumed learner replays, so `--resume` after a
    SIGKILL stores every acked step exactly once."""

    kind = "actor processes (realrl learner, or train --actors N)"

    def __init__(
        self,
        config: TrainConfig,
        server_config: ServerConfig,
        online: ReplayBuffer,
        journal_dir: Path,
        welcome: dict[str, Any],
        on_ready=None,
    ) -> None:
        spec = RecordSpec(
            state_dim=online.state_dim,
            action_dim=online.action_dim,
            image_shapes=online.image_shapes,
            base_action_dim=online.base_action_dim,
        )
        self.config = config
        self.journal = Journal(journal_dir, checksums=server_config.fsync_journal)
        self.ingest = Ingest(spec, online, self.journal)
        self.server = LearnerServer(server_config, self.ingest, welcome)
        self.on_ready = on_ready
        self.endpoint: str | None = None
        self._published = (-1, 0.0)  # (version, time) of the last weight push
        self._actor_steps: dict[str, int] = {}
        self._server_stopped = False

    @property
    def env_steps(self) -> int:
        return self.ingest.steps_stored

    def fresh_start(self) -> None:
        self.journal.clear()  # records of a run that died before its first checkpoint

    def start(self, policy: Policy, updates: int) -> None:
        self.endpoint = self.server.start()
        self.publish(policy, updates)
        if self.on_ready is not None:
            self.on_ready(self.endpoint)

    def collect(self, limit: int, wait: bool) -> None:
        if self.server.error is not None:
            raise RuntimeError(f"the learner server failed: {self.server.error}") from self.server.error
        if wait:
            time.sleep(0.002)  # waiting for the actors' data

    def after_update(self, policy: Policy, updates: int) -> None:
        version, when = self._published
        due = updates - version >= self.config.weights_every
        if updates > version and (due or time.monotonic() - when >= self.config.weights_every_s):
            self.publish(policy, updates)

    def publish(self, policy: Policy, version: int) -> None:
        """The policy's weights (float32), packed into one frame; version = updates so far."""
        tensors = {
            name: t.detach().float().cpu().numpy() if t.is_floating_point() else t.detach().cpu().numpy()
            for name, t in policy.pushed_state_dict().items()
        }
        manifest, blob = pack_weights(tensors)
        self.server.publish(version, manifest, blob)
        self._published = (version, time.monotonic())

    def row_metrics(self, elapsed_s: float) -> dict[str, Any]:
        with self.ingest.lock:
            row = self.ingest.metrics(self.server.weights_version, elapsed_s, self._actor_steps)
            row["episodes"] = sum(stats.episodes for stats in self.ingest.actors.values())
        row["live_actors"] = len(self.server.live_actors())
        finished = [
            (stats["episode_return"], stats["success_rate"])
            for stats in row["actors"].values()
            if "success_rate" in stats
        ]
        return {**row, **mean_episode_stats(finished)}

    def finish(self, wait_s: float = 15.0) -> None:
        """Tell the actors training is over and give them time to deliver their last records."""
        self.server.finish()
        deadline = time.monotonic() + wait_s
        while self.server.live_actors() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop_server("learner stopping")  # actors keep their unacked steps for a restart

    def close(self, finished: bool) -> None:
        self._stop_server("done" if finished else "learner stopping")
        self.journal.close()

    def _stop_server(self, reason: str) -> None:
        if not self._server_stopped and self.endpoint is not None:
            self._server_stopped = True
            self.server.stop(reason)

    def summary(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "actors": self.ingest.state_dict()["actors"]}  # cumulative

    # -- checkpoints --------------------------------------------------------------------------
    def consistent(self) -> contextlib.AbstractContextManager:
        return self.ingest.lock  # the buffer and the dedup counters must agree

    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        state = self.ingest.state_dict()
        self.journal.rotate()
        return {"ingest": state}, {"journal_start": state["journal_start"]}

    def prune(self, oldest_counters: dict[str, Any]) -> None:
        self.journal.prune(oldest_counters["journal_start"])

    def restore(self, state: dict[str, Any] | None, counters: dict[str, Any] | None) -> None:
        """The checkpoint's ingest state, then every record acked after it, from the journal (all of
        the journal when the run died before its first checkpoint)."""
        start = 0
        if state is not None:
            self.ingest.load_state_dict(state["ingest"])
            start = state["ingest"]["journal_start"]
        self.ingest.replay_journal(start)
        self.ingest.end_all_sessions()


def learner_welcome(config: TrainConfig, policy: Policy, random_steps: int) -> dict[str, Any]:
    """What the server tells every actor that says hello: the task, and how to build the policy."""
    return {
        "task": config.task,
        "obs": config.obs,
        "policy": policy.describe(),
        "random_steps": random_steps,
    }
