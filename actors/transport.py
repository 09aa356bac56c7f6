"""The actor's link to the learner, on a background thread so the control loop never waits for the
network or the disk: `send` only appends to an in-memory queue.

The thread spools every record (actors.spool, one directory per session) before sending it, sends
in sequence order, and forgets records when the learner acks them. When the learner goes quiet it
says hello again until a welcome comes (from the same learner or a restarted one), then resends
everything still unacked, older sessions' leftovers first; the learner drops what it already has.
Weights that arrive wait in a slot the control loop empties at a step boundary."""

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
from formats.wire import Limits, WireError, decode, encode, unpack_weights

_log = logging.getLogger(__name__)
_RESEND_BUDGET = 64  # spooled records sent per loop turn while catching up


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
        self.learner_done = threading.Event()  # the learner said training is over
        self.error: str | None = None
        self.acked_through = -1  # of this session
        self._outbox: collections.deque = collections.deque()
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

    def send(self, seq: int, frames: list) -> None:
        """Queue one record (never blocks)."""
        self._outbox.append((seq, frames))

    def take_weights(self) -> tuple[int, dict[str, np.ndarray]] | None:
        """The newest weights that arrived since the last call, or None."""
        with self._weights_lock:
            weights, self._weights = self._weights, None
        return weights

    def close(self, wait_s: float = 10.0, last_seq: int = -1) -> None:
        """Wait (at most `wait_s`) until every record through `last_seq` is acked, then say bye."""
        deadline = time.monotonic() + wait_s
        while self.acked_through < last_seq and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.01)
        self._stop.set()
        self._thread.join(timeout=5)

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
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
                    self._try_send(socket, encode("hello", self.hello))
                if socket.poll(5, zmq.POLLIN):
                    last_heard = self._receive(socket)
                if self._connected and time.monotonic() - last_heard > self.config.learner_timeout_s:
                    _log.warning("learner silent for %.0f s: reconnecting", time.monotonic() - last_heard)
                    self._connected = False
                self._drain_outbox(socket)
                if self._connected:
                    self._resend(socket)
                    if now >= next_heartbeat:
                        next_heartbeat = now + self.config.heartbeat_s
                        self._try_send(socket, encode("heartbeat", {"actor": self.actor_id}))
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

    def _handle(self, kind: str, header: dict, arrays: dict) -> None:
        if kind == "welcome":
            if self._incarnation not in (None, header["learner"]):
                _log.info("a restarted learner answered: resending every unacked record")
            self._incarnation, self.welcome = header["learner"], header
            self._connected = True
            self._cursor = {}  # resend all that is unacked; the learner drops duplicates
            self.welcomed.set()
        elif kind == "heartbeat":
            if header.get("learner") != self._incarnation:
                self._connected = False  # a learner that does not know us: say hello
        elif kind == "ack":
            spool = self.spools.get(header["session"])
            if spool is not None:
                spool.ack_through(int(header["through"]))
                if spool is not self.spool and len(spool) == 0:
                    shutil.rmtree(spool.directory, ignore_errors=True)
                    del self.spools[header["session"]]
            if header["session"] == self.session:
                self.acked_through = max(self.acked_through, int(header["through"]))
        elif kind == "weights":
            tensors = unpack_weights(header["tensors"], arrays["blob"])
            with self._weights_lock:
                self._weights = (int(header["version"]), tensors)
        elif kind == "bye":
            reason = str(header.get("reason", ""))
            if reason == "done":  # stay connected: the last records still need their acks
                self.learner_done.set()
                return
            self._connected = False
            if reason.startswith("spec mismatch"):
                self.error = reason
                self.learner_done.set()

    def _drain_outbox(self, socket: zmq.Socket) -> None:
        """Spool each new record; send it straight away when nothing older is waiting."""
        while self._outbox:
            seq, frames = self._outbox.popleft()
            try:
                self.spool.put(seq, frames)
            except OSError as error:  # a full or failing disk: keep streaming, say so now and then
                self.spool.refused += 1
                if self.spool.refused & (self.spool.refused - 1) == 0:
                    _log.warning(
                        "spool: cannot write record %d (%s); %d not spooled", seq, error, self.spool.refused
                    )
            in_order = self._cursor.get(self.session, -1) == seq - 1 and self._caught_up()
            if self._connected and in_order and self._try_send(socket, frames):
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
                if budget == 0 or not self._try_send(socket, frames):
                    return
                self._cursor[name] = seq
                budget -= 1

    def _try_send(self, socket: zmq.Socket, frames: list) -> bool:
        try:
            socket.send_multipart(frames, zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            return False
