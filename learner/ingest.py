"""The learner's side of the step stream, without sockets: checks step records against the task's
spec, drops duplicates by (actor, session, seq), journals new records (an ack means durable), and
pairs each actor session's consecutive records into episodes for the replay buffer.

The server calls `offer` per received step message and `commit` once per batch: commit fsyncs the
journal, moves the batch into the episodes being put together and returns the acks to send. A
resumed learner loads `state_dict` from its checkpoint and calls `replay_journal`, which feeds the
journal through the same code, so a SIGKILL between checkpoints loses no acked step and stores none
twice. An episode reaches the replay buffer when its last record arrives (the buffer keeps an
episode's observations in consecutive slots); a fragment cut short by a lost record, a dead actor or
a new session is stored as it is, bootstrapping from its last observation."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from formats.episodes import Episode
from formats.wire import Limits, RecordSpec, StepRecord, WireError, decode, parse_step
from learner.journal import Journal
from learner.replay import ReplayBuffer

_log = logging.getLogger(__name__)
_SEQ_BITS = 40  # record id = stream index << 40 | seq: a million streams of 10^12 steps each


@dataclass(eq=False)  # hashed by identity: streams key the per-batch ack set
class Stream:
    """One actor session's records."""

    index: int  # record ids carry it
    actor: str
    session: str
    last_seq: int = -1  # newest seq journaled: anything at or below it is a duplicate
    stored_through: int = -1  # newest seq whose record is in the replay buffer (or was lost in a gap)
    fragment: list[tuple[int, StepRecord]] = field(default_factory=list)  # (journal offset, record)

    def record_id(self, seq: int) -> int:
        return (self.index << _SEQ_BITS) | seq


@dataclass
class ActorStats:
    """Cumulative per actor id over the run (checkpointed), plus what the next metrics row reports."""

    steps_received: int = 0
    steps_stored: int = 0
    duplicates_dropped: int = 0
    rejected: int = 0
    policy_version: int = -1  # the version that produced the newest stored step
    episodes: int = 0
    operator_steps: int = 0  # steps whose executed action came from a human operator (interventions)
    filtered_steps: int = 0  # steps whose action the safety filter changed
    steps_lost: int = 0  # records the actor found damaged in its spool and could not resend
    finished: list[tuple[float, bool]] = field(default_factory=list)  # (return, success) since last row
    episode_return: float = 0.0  # of the episode being received
    episode_success: bool = False

    CUMULATIVE = (
        "steps_received",
        "steps_stored",
        "duplicates_dropped",
        "rejected",
        "policy_version",
        "episodes",
        "operator_steps",
        "filtered_steps",
        "steps_lost",
    )


def split_record_id(record_id: int) -> tuple[int, int]:
    """(stream index, seq) of a replay slot's record id."""
    return record_id >> _SEQ_BITS, record_id & ((1 << _SEQ_BITS) - 1)


class Ingest:
    def __init__(
        self, spec: RecordSpec, buffer: ReplayBuffer, journal: Journal, limits: Limits | None = None
    ):
        self.spec, self.buffer, self.journal = spec, buffer, journal
        self.limits = limits or Limits()
        self.lock = threading.Lock()  # the server holds it per batch, a checkpoint while it snapshots
        self.streams: dict[tuple[str, str], Stream] = {}
        self.actors: dict[str, ActorStats] = {}
        self.rejected_messages: Counter[str] = Counter()
        self.steps_stored = 0  # over all actors: the learner's env-step clock
        self._pending: list[tuple[Stream, int, StepRecord]] = []
        self._acks: dict[Stream, None] = {}  # streams to ack after the batch, in arrival order
        self._resends: dict[Stream, None] = {}  # streams that lost a record: ask for it again
        self._replaying_until: dict[Stream, int] = {}  # while replaying: seqs already counted

    # -- live ingest (server thread, lock held) ---------------------------------------------------
    def reject(self, reason: str, actor: str | None, detail: str) -> None:
        """Count one bad message (and log it: the 1st, 2nd, 4th, 8th, ... of each reason)."""
        self.rejected_messages[reason] += 1
        if actor is not None:
            self.actor(actor).rejected += 1
        count = self.rejected_messages[reason]
        if count & (count - 1) == 0:
            _log.warning(
                "rejected a message from %s: %s (%d %s so far)",
                actor or "an unknown peer",
                detail,
                count,
                reason,
            )

    def actor(self, name: str) -> ActorStats:
        return self.actors.setdefault(name, ActorStats())

    def offer(self, actor: str, message: Any, frames: Sequence[Any], *, offset: int | None = None) -> bool:
        """One decoded 'step' message from a connection that said hello as `actor`. Journals it
        (unless it comes from the journal, at `offset`) and queues it for `commit`; False when it was
        rejected or a duplicate."""
        stats = self.actor(actor)
        try:
            record = parse_step(message, self.spec)
            if record.actor != actor:
                raise WireError(
                    "bad_record", f"record of actor {record.actor[:40]!r} on {actor!r}'s connection"
                )
        except WireError as error:
            self.reject(error.reason, actor, str(error))
            return False
        stream = self._stream(record.actor, record.session)
        if offset is None and stream.last_seq >= 0 and record.seq > stream.last_seq + 1:
            # Lost on the way (a reconnect drops what was in flight): storing it would let the
            # cumulative ack cover the missing ones, which the actor would then delete unsent.
            self.reject(
                "out_of_order", actor, f"seq {record.seq} after {stream.last_seq}: asked for a resend"
            )
            self._resends[stream] = None
            return False
        if stream.last_seq < 0 and record.seq > 0 and offset is None:
            _log.info(
                "actor %s session %s starts at seq %d (the records before it were acked by an earlier run)",
                actor,
                record.session,
                record.seq,
            )
        replayed = offset is not None and record.seq <= self._replaying_until.get(stream, -1)
        if not replayed:
            stats.steps_received += 1
        self._acks[stream] = None
        if record.seq <= stream.last_seq:
            if offset is None:  # journal replay skips what the checkpoint holds, silently
                stats.duplicates_dropped += 1
            return False
        stream.last_seq = record.seq
        if offset is None:
            offset = self.journal.append(frames)
        if not replayed:
            stats.steps_stored += 1
            self.steps_stored += 1
        self._pending.append((stream, offset, record))
        return True

    def commit(self, *, sync: bool = True) -> list[tuple[str, str, int]]:
        """Make the batch durable, then pair it into episodes. Returns the acks to send:
        (actor, session, newest seq handled)."""
        if self._pending and sync:
            self.journal.sync()
        for stream, offset, record in self._pending:
            self._extend(stream, offset, record)
        self._pending.clear()
        acks = [(s.actor, s.session, s.last_seq) for s in self._acks if s.last_seq >= 0]
        self._acks.clear()
        return acks

    def skip(self, actor: str, session: str, through: int) -> None:
        """The actor lost its records after the newest one we have, through `through` (damaged in
        its spool): count them, and go on after them (the next ack covers them)."""
        stream = self.streams.get((actor, session))
        if stream is None or through <= stream.last_seq:
            return  # a new stream starts wherever its first record says; or old news
        lost = through - stream.last_seq
        self.actor(actor).steps_lost += lost
        _log.warning("actor %s session %s lost %d records (seq %d..%d) in its spool", actor, session,
                     lost, stream.last_seq + 1, through)  # fmt: skip
        if stream.fragment:
            self._flush(stream)
        stream.last_seq = stream.stored_through = through
        self._acks[stream] = None

    def take_resends(self) -> list[tuple[str, str, int]]:
        """(actor, session, newest seq stored) of each stream whose next record went missing in this
        batch: the actor sends again from there."""
        resends = [(s.actor, s.session, s.last_seq) for s in self._resends]
        self._resends.clear()
        return resends

    def end_session(self, actor: str, session: str) -> None:
        """The session is over (dead, or replaced by a new one): store what it left and free it."""
        stream = self.streams.get((actor, session))
        if stream is not None and stream.fragment:
            self._flush(stream)

    def end_all_sessions(self) -> None:
        """Store every open fragment (after a journal replay: their actors may never come back,
        and an open fragment holds the journal; one that does come back starts a new fragment)."""
        for stream in self.streams.values():
            if stream.fragment:
                self._flush(stream)

    # -- episodes ------------------------------------------------------------------------------
    def _extend(self, stream: Stream, offset: int, record: StepRecord) -> None:
        if stream.fragment:
            last = stream.fragment[-1][1]
            if (record.seq, record.episode, record.t) != (last.seq + 1, last.episode, last.t + 1):
                self._flush(stream)  # a lost record or a new episode: nothing pairs across it
        stream.fragment.append((offset, record))
        stats = self.actor(stream.actor)
        stats.policy_version = max(stats.policy_version, record.policy_version)
        stats.episode_return += record.reward
        stats.episode_success |= record.success
        if record.done:
            stats.finished.append((stats.episode_return, stats.episode_success))
            stats.episodes += 1
            stats.episode_return, stats.episode_success = 0.0, False
            self._flush(stream)

    def _base_actions(self, records: list[StepRecord], last: StepRecord | None) -> np.ndarray | None:
        """A residual run's base actions, one per observation (the final one's from `last`)."""
        if not self.spec.base_action_dim:
            return None
        return np.stack([r.base_action for r in records] + ([last.final_base_action] if last else []))

    def _flush(self, stream: Stream) -> None:
        """Store the stream's fragment as one episode. Without the final observation (an episode cut
        short) the last record gives only its observation: its action has no next observation."""
        records = [record for _, record in stream.fragment]
        last = records[-1]
        final = last.done
        steps = records if final else records[:-1]
        states = [r.state for r in records] + ([last.final_state] if final else [])
        images = {
            name: np.stack([r.images[name] for r in records] + ([last.final_images[name]] if final else []))
            for name in self.spec.image_shapes
        }
        ids = [stream.record_id(r.seq) for r in records] + ([-1] if final else [])

        def column(name: str, dtype) -> np.ndarray:
            return np.array([getattr(r, name) for r in steps], dtype=dtype)

        action = (
            np.stack([r.action for r in steps]) if steps else np.zeros((0, self.spec.action_dim), np.float32)
        )
        episode = Episode(
            states=np.stack(states),
            images=images,
            action=action,
            reward=column("reward", np.float32),
            terminated=column("terminated", bool),
            truncated=column("truncated", bool),
            success=column("success", bool),
            safety_margin=column("safety_margin", np.float32),
            intervened=column("intervened", bool),
            base_action=self._base_actions(records, last if final else None),
        )
        self.buffer.add_episode(episode, np.array(ids, dtype=np.int64))
        stats = self.actor(stream.actor)  # counted when stored: a journal replay stores each step once
        stats.operator_steps += sum(r.action_source == "operator" for r in steps)
        stats.filtered_steps += sum(r.action_source == "filter" for r in steps)
        stream.stored_through = last.seq
        stream.fragment = []

    def _stream(self, actor: str, session: str) -> Stream:
        key = (actor, session)
        if key not in self.streams:
            self.streams[key] = Stream(len(self.streams), actor, session)
        return self.streams[key]

    # -- metrics ---------------------------------------------------------------------------------
    def metrics(self, latest_version: int, elapsed_s: float, previous: dict[str, int]) -> dict[str, Any]:
        """The metrics row's `actors` and `rejected_messages`; `previous` holds steps_stored per actor
        at the last row (updated here) for steps/s."""
        actors = {}
        for name, stats in sorted(self.actors.items()):
            row: dict[str, Any] = {key: getattr(stats, key) for key in ActorStats.CUMULATIVE}
            row["steps_per_s"] = round((stats.steps_stored - previous.get(name, 0)) / max(elapsed_s, 1e-9), 2)
            row["policy_lag"] = latest_version - stats.policy_version if stats.policy_version >= 0 else None
            if stats.finished:
                row["episode_return"] = float(np.mean([r for r, _ in stats.finished]))
                row["success_rate"] = float(np.mean([s for _, s in stats.finished]))
                stats.finished = []
            previous[name] = stats.steps_stored
            actors[name] = row
        return {"actors": actors, "rejected_messages": dict(self.rejected_messages)}

    # -- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-ready: streams, counters and where journal replay must start (the oldest record of
        an episode still being put together). Take it with `lock` held, with the buffer's state."""
        open_offsets = [s.fragment[0][0] for s in self.streams.values() if s.fragment]
        return {
            "journal_start": min(open_offsets, default=self.journal.end),
            "steps_stored": self.steps_stored,
            "streams": [
                [s.index, s.actor, s.session, s.last_seq, s.stored_through]
                for s in sorted(self.streams.values(), key=lambda s: s.index)
            ],
            "actors": {
                name: {key: getattr(stats, key) for key in ActorStats.CUMULATIVE}
                for name, stats in self.actors.items()
            },
            "rejected_messages": dict(self.rejected_messages),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps_stored = int(state["steps_stored"])
        self.streams = {}
        for index, actor, session, last_seq, stored_through in state["streams"]:
            stream = Stream(int(index), actor, session, int(stored_through), int(stored_through))
            self.streams[(actor, session)] = stream
            self._replaying_until[stream] = int(last_seq)  # counted in the stats already
        self.actors = {name: ActorStats(**counts) for name, counts in state["actors"].items()}
        self.rejected_messages = Counter(state["rejected_messages"])

    def replay_journal(self, start: int) -> int:
        """Feed the journal from `start` back through `offer`/`commit`: the episodes open at the
        checkpoint and every step acked after it. Returns how many records were replayed."""
        began, count = time.monotonic(), 0
        for offset, frames in self.journal.records(start):
            message = decode(frames, self.limits)
            self.offer(message.header["actor"], message, frames, offset=offset)
            count += 1
            if len(self._pending) >= 256:
                self.commit(sync=False)
        self.commit(sync=False)
        self._replaying_until.clear()
        if count:
            _log.info("replayed %d journaled step records in %.1f s", count, time.monotonic() - began)
        return count
