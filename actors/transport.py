"""The actor's link to the learner, on a background thread so the control loop never waits for the
network or the disk: `send` only appends to an in-memory queue.

The thread spools every record (actors.spool, one directory per session) before sending it, sends
in sequence order, and forgets records when the learner acks them. When the learner goes quiet it
says hello again until a welcome comes (from the same learner or a restarted one), then resends
everything still unacked, older sessions' leftovers first; the learner drops what it already has,
and asks for a resend when a record is missing (an ack never covers a gap). Weights that arrive wait
in a slot the control loop empties at a step boundary.

Nothing is lost without a count: `send` refuses a record the spool budget (`spool_bytes`, all
sessions together) cannot take, before it is queued, and the caller holds the robot or drops and
counts it. A thread that dies (a bad endpoint, an unreadable key) sets `error` and `ended`, so the
control loop stops instead of waiting for a learner forever."""

from __future__ import annotations

import collections
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq
import zmq.auth

from actors.config import TransportConfig
from actors.spool import Spool
from formats.wire import Limits, WireError, decode, encode, frame_table, unpack_weights

_log = logging.getLogger(__name__)
_RESEND_BUDGET = 64  # spooled records sent per loop turn while catching up
_REWIND_EVERY_S = 1.0  # the same resend request is honoured at most this often (in-flight records repeat it)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def record_bytes(frames: list) -> int:
    """What one record takes in the spool (actors.spool stores wire.pack_frames of it)."""
    return len(frame_table(frames)) + sum(memoryview(f).nbytes for f in frames)


class ActorTransport:
    def __init__(
        self,
        config: TransportConfig,
        actor_id: str,
        session: str,
        spool_root: str | Path,
        hello: dict[str, Any],
        limits: Limits | None = None,
    ) -> None:
        if bool(config.curve_secret) != bool(config.learner_key):
            raise ValueError(
                "CURVE needs both --curve-secret (this actor's) and --learner-key (the learner's)"
            )
        self.config, self.actor_id, self.session = config, actor_id, session
        self.limits = limits or Limits()
        self.hello = {**hello, "actor": actor_id, "session": session}
        root = Path(spool_root)
        self.spools = {
            path.name: Spool(path, config.spool_bytes) for path in sorted(root.glob("*")) if path.is_dir()
        }
        self.spools.pop(session, None)
        for name, spool in list(self.spools.items()):
            if len(spool) == 0:
                shutil.rmtree(spool.directory, ignore_errors=True)
                del self.spools[name]
        if self.spools:
            left = sum(len(s) for s in self.spools.values())
            _log.info(
                "spool: %d unacked records of %d earlier session(s) will be resent", left, len(self.spools)
            )
        self.spool = self.spools[session] = Spool(root / session, config.spool_bytes)
        self.welcome: dict[str, Any] | None = None
        self.welcomed = threading.Event()
        self.ended = threading.Event()  # stop acting: the learner said training is over, or `error`
        self.error: str | None = None  # why this actor cannot go on (refused, or the thread died)
        self.acked_through = -1  # of this session
        self.unspooled = 0  # records handed over that never reached the spool (a failing disk)
        self._outbox: collections.deque = collections.deque()  # (seq, frames, bytes)
        self._budget = threading.Lock()
        self._queued_bytes = 0  # in the outbox, not spooled yet
        self._spooled_bytes = sum(s.nbytes for s in self.spools.values())  # all sessions' spools
        self._hellos = 0  # hellos sent: a welcome names the one it answers
        self._epoch = 1  # the first hello since we lost the learner: welcomes to older ones are stale
        self._acked_at = time.monotonic()  # when this session's ack last moved (or nothing was owed)
        self._rewound: tuple[str, int, float] | None = None  # last honoured resend request
        self._refusal: str | None = None  # why the learner keeps turning this actor away, logged once
        self._silent_since = time.monotonic()  # no welcome since then (while not connected)
        self._next_silence_warning = config.answer_timeout_s
        self._weights: tuple[int, dict[str, np.ndarray]] | None = None
        self._weights_lock = threading.Lock()
        self._connected = False
        self._cursor: dict[str, int] = {}  # per session: newest seq sent since the last welcome
        self._incarnation: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="actor-transport", daemon=True)

    # -- control loop side -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def send(self, seq: int, frames: list, *, fill: float = 1.0, force: bool = False) -> bool:
        """Queue one record unless the spool budget would then be more than `fill` used (then False,
        and nothing was queued: the caller holds the robot until acks free room, or drops and
        counts). `force` queues it past the budget (the last record of an actor told to stop while
        it waited for room). Never blocks."""
        size = record_bytes(frames)
        with self._budget:
            used = self._spooled_bytes + self._queued_bytes + size
            if used > fill * self.config.spool_bytes and not force:
                return False
            self._queued_bytes += size
        self._outbox.append((seq, frames, size))
        return True

    @property
    def unacked(self) -> int:
        """This session's records not acked yet: spooled, or queued for the spool."""
        return len(self.spool) + len(self._outbox)

    def spool_usage(self) -> str:
        with self._budget:
            used = self._spooled_bytes + self._queued_bytes
        return f"{self.unacked} records, {_size(used)} of --spool-bytes {_size(self.config.spool_bytes)}"

    def take_weights(self) -> tuple[int, dict[str, np.ndarray]] | None:
        """The newest weights that arrived since the last call, or None."""
        with self._weights_lock:
            weights, self._weights = self._weights, None
        return weights

    def close(self, wait_s: float = 10.0, last_seq: int = -1) -> None:
        """Wait (at most `wait_s`) until every record through `last_seq` is acked, then say bye.
        Records still queued are spooled first (resent by the next session); `unspooled` counts any
        the disk would not take."""
        deadline = time.monotonic() + wait_s
        while self.acked_through < last_seq and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.01)
        self._stop.set()
        self._thread.join(timeout=60)  # it spools what is queued first; bounded against a hang only
        if self._thread.is_alive():
            _log.error("the transport thread did not end: the counts below are a guess")
        elif self._outbox:
            self._spool_outbox(None)  # a thread that died left them
        self.unspooled = len(self._outbox)
        if self.unspooled:
            _log.error("spool: %d records could not be written and are lost", self.unspooled)

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._serve()
        except Exception as error:  # noqa: BLE001 (any failure must reach the control loop)
            self.error = f"the link to the learner failed: {type(error).__name__}: {error}"
            _log.error("%s", self.error)
            self.ended.set()

    def _serve(self) -> None:
        context = zmq.Context()
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing for a learner that is not there
        socket.setsockopt(zmq.SNDHWM, 1000)
        if self.config.curve_secret:
            public, secret = zmq.auth.load_certificate(self.config.curve_secret)
            server_public, _ = zmq.auth.load_certificate(self.config.learner_key)
            socket.curve_secretkey, socket.curve_publickey, socket.curve_serverkey = (
                secret,
                public,
                server_public,
            )
        socket.connect(self.config.learner)
        next_hello = next_heartbeat = 0.0
        last_heard = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if not self._connected and now >= next_hello:
                    next_hello = now + 1.0
                    self._hellos += 1
                    self._try_send(socket, encode("hello", {**self.hello, "hello": self._hellos}))
                    self._warn_if_unanswered(now)
                if socket.poll(5, zmq.POLLIN):
                    last_heard = self._receive(socket)
                if self._connected and time.monotonic() - last_heard > self.config.learner_timeout_s:
                    _log.warning("learner silent for %.0f s: reconnecting", time.monotonic() - last_heard)
                    self._disconnected()
                self._spool_outbox(socket)
                if self._connected:
                    self._rewind_if_unacked(now)
                    self._resend(socket)
                    self._count_spooled()  # a damaged record moved aside frees its bytes
                    if now >= next_heartbeat:
                        next_heartbeat = now + self.config.heartbeat_s
                        self._try_send(socket, encode("heartbeat", {"actor": self.actor_id}))
            self._spool_outbox(socket)
            if self._connected:
                self._try_send(socket, encode("bye", {"actor": self.actor_id}))
        finally:
            socket.close(linger=200)
            context.term()

    def _receive(self, socket: zmq.Socket) -> float:
        last_heard = time.monotonic()
        while True:
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return last_heard
            try:
                message = decode(frames, self.limits)
                self._handle(message.type, message.header, message.arrays)
            except (WireError, KeyError, TypeError, ValueError) as error:
                _log.warning("bad message from the learner: %s", error)

    def _warn_if_unanswered(self, now: float) -> None:
        """One line after `answer_timeout_s` without a welcome, then at doubling intervals."""
        silent = now - self._silent_since
        if silent >= self._next_silence_warning:
            self._next_silence_warning *= 2
            keys = (
                " Check --learner-key and that this actor's public key is in the learner's --allow-keys."
                if self.config.curve_secret
                else " (A learner with CURVE keys answers only actors with --curve-secret/--learner-key.)"
            )
            _log.warning(
                "no answer from the learner at %s for %.0f s: is it running there?%s",
                self.config.learner,
                silent,
                keys,
            )

    def _disconnected(self) -> None:
        self._connected = False
        self._epoch = self._hellos + 1
        self._silent_since = time.monotonic()
        self._next_silence_warning = self.config.answer_timeout_s

    def _rewind_if_unacked(self, now: float) -> None:
        """Records sent but not acked for `learner_timeout_s` while the learner talks to us: one was
        lost on the way and nothing sent after it made the learner ask for it (say the robot is held
        on a full spool), so send again from the first unacked one."""
        if self._cursor.get(self.session, -1) <= self.acked_through:
            self._acked_at = now
        elif now - self._acked_at > self.config.learner_timeout_s:
            self._acked_at = now
            self._rewind(self.session, self.acked_through)

    def _handle(self, kind: str, header: dict, arrays: dict) -> None:
        if kind == "welcome":
            if self._connected or header.get("hello", self._epoch) < self._epoch:
                return  # one of many answers to hellos queued while the learner was stalled
            if self._incarnation not in (None, header["learner"]):
                _log.info("a restarted learner answered: resending every unacked record")
            if self._refusal is not None:
                _log.info("the learner accepted this actor now")
                self._refusal = None
            self._incarnation, self.welcome = header["learner"], header
            self._connected = True
            self._cursor = {}  # resend all that is unacked; the learner drops duplicates
            self.welcomed.set()
        elif kind == "heartbeat":
            if self._connected and header.get("learner") != self._incarnation:
                self._disconnected()  # a learner that does not know us: say hello
        elif kind == "ack":
            spool = self.spools.get(header["session"])
            if spool is not None:
                spool.ack_through(int(header["through"]))
                if spool is not self.spool and len(spool) == 0:
                    shutil.rmtree(spool.directory, ignore_errors=True)
                    del self.spools[header["session"]]
                self._count_spooled()
            if header["session"] == self.session and int(header["through"]) > self.acked_through:
                self.acked_through = int(header["through"])
                self._acked_at = time.monotonic()
        elif kind == "resend":
            self._rewind(str(header["session"]), int(header["after"]))
        elif kind == "weights":
            tensors = unpack_weights(header["tensors"], arrays["blob"])
            with self._weights_lock:
                self._weights = (int(header["version"]), tensors)
        elif kind == "bye":
            reason = str(header.get("reason", ""))
            if reason == "done":  # stay connected: the last records still need their acks
                self.ended.set()
                return
            if self._connected:
                self._disconnected()
            if header.get("refused"):  # this actor can never be let in as it is: stop, say why
                self.error = f"the learner refused this actor: {reason}"
                self.ended.set()
            elif header.get("retry") and reason != self._refusal:
                _log.warning("the learner turned this actor away: %s (saying hello again)", reason)
                self._refusal = reason

    def _rewind(self, session: str, after: int) -> None:
        """The learner misses the record after `after` (lost on the way): send again from there.
        Records already in flight each repeat the request, so the same one is honoured once a second."""
        now = time.monotonic()
        if self._cursor.get(session, -1) <= after:
            return
        if (
            self._rewound
            and self._rewound[:2] == (session, after)
            and now - self._rewound[2] < _REWIND_EVERY_S
        ):
            return
        self._rewound = (session, after, now)
        self._cursor[session] = after
        _log.info("the learner misses records of session %s after seq %d: resending", session, after)

    def _count_spooled(self) -> None:
        total = sum(s.nbytes for s in self.spools.values())
        with self._budget:
            self._spooled_bytes = total

    def _spool_outbox(self, socket: zmq.Socket | None) -> None:
        """Spool each new record; send it straight away when nothing older is waiting. A record the
        disk will not take stays queued (and in the budget) and is tried again next turn, so a
        failing disk fills the budget and the control loop holds: none is dropped here."""
        while self._outbox:
            seq, frames, size = self._outbox[0]
            try:
                stored = self.spool.put(seq, frames)
            except OSError as error:
                stored = False
                self.spool.refused += 1
                if self.spool.refused & (self.spool.refused - 1) == 0:  # 1st, 2nd, 4th, ... failure
                    _log.warning("spool: cannot write record %d (%s); retrying", seq, error)
            if not stored:
                return
            self._outbox.popleft()
            with self._budget:
                self._queued_bytes -= size
                self._spooled_bytes += size
            in_order = self._cursor.get(self.session, -1) == seq - 1 and self._caught_up()
            if socket is not None and self._connected and in_order and self._try_send(socket, frames):
                self._cursor[self.session] = seq

    def _caught_up(self) -> bool:
        """No older session has records waiting to be resent."""
        return all(
            self._cursor.get(name, -1) >= spool.last_seq
            for name, spool in self.spools.items()
            if spool is not self.spool
        )

    def _resend(self, socket: zmq.Socket) -> None:
        budget = _RESEND_BUDGET
        for name, spool in self.spools.items():  # earlier sessions first, this one last
            for seq, frames in spool.pending(after=self._cursor.get(name, -1)):
                if budget == 0 or not self._skip_lost(socket, name, spool, seq):
                    return
                if not self._try_send(socket, frames):
                    return
                self._cursor[name] = seq
                budget -= 1

    def _skip_lost(self, socket: zmq.Socket, name: str, spool: Spool, seq: int) -> bool:
        """Before resending `seq`: if records between the last one sent and it were found damaged
        in the spool (counted, never sendable), tell the learner they are gone, or it would wait
        for them forever (an ack never covers a gap). False when that could not be sent now."""
        cursor = self._cursor.get(name, -1)
        if not any(cursor < lost < seq for lost in spool.lost):
            return True
        return self._try_send(
            socket, encode("skip", {"actor": self.actor_id, "session": name, "through": seq - 1})
        )

    def _try_send(self, socket: zmq.Socket, frames: list) -> bool:
        try:
            socket.send_multipart(frames, zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            return False
