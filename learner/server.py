"""The learner's network side: one ZeroMQ ROUTER socket, served by one background thread, that
greets actors, ingests their step records (journal, dedup, episodes: learner.ingest), acks them once
durable, exchanges heartbeats, and pushes versioned policy weights. The training loop never touches
the socket: it publishes weights here and reads counters.

Every message is checked by formats.wire; a bad one is counted under its reason and logged, and the
server goes on serving everyone else. With CURVE keys the socket is encrypted and a ZAP handler lets
in only actors whose public key is in the allow-list directory; a stranger's handshake fails (logged
with its key), so it can neither send a step nor receive a byte of weights, and an allowed key may
say hello only as the actor its file is named after. Without keys the default bind is loopback.

A hello is refused for good (the actor stops, naming the reason) when its task or observation spec
differs from the learner's, or its id is not its key's; it is turned away for now while another live
actor (heard within --actor-timeout-s) uses the same id, so a restarted actor gets in once its old
session is marked dead."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from formats.wire import Limits, WireError, decode, encode
from learner.configs import ServerConfig
from learner.ingest import Ingest

_log = logging.getLogger(__name__)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class Connection:
    actor: str
    session: str
    last_heard: float
    weights_version: int = -1  # newest version sent to it


def allowed_keys(directory: str | Path) -> dict[bytes, str]:
    """{z85 public key: actor name} of an allow-list directory (NAME.key -> NAME)."""
    keys = {}
    for path in sorted(Path(directory).glob("*.key")):
        public, _ = zmq.auth.load_certificate(path)
        keys[public] = path.stem
    return keys


def key_fingerprint(z85_key: bytes) -> str:
    return hashlib.sha256(z85_key).hexdigest()[:16]


class _Authenticator(ThreadAuthenticator):
    """pyzmq's ZAP handler over the allow-list: a handshake's User-Id is the allowed key's name (the
    server checks it against the hello), and a refused key is logged with its fingerprint (its
    1st, 2nd, 4th, ... handshake: a refused client retries several times a second)."""

    def __init__(self, context: zmq.Context, names: dict[bytes, str]) -> None:
        super().__init__(context)
        self.names = names  # {z85 public key: actor name}
        self.refusals: Counter[bytes] = Counter()

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self.names.get(z85.encode(client_public_key), "")  # a raw key; the names are z85

    def callback(self, domain: str, z85_key: bytes) -> bool:
        """The credentials provider's check (configure_curve_callback)."""
        if z85_key in self.names:
            return True
        self.refusals[z85_key] += 1
        count = self.refusals[z85_key]
        if count & (count - 1) == 0:
            _log.warning(
                "refused a CURVE handshake: key %s (fingerprint %s) is not in --allow-keys (handshake %d)",
                z85_key.decode(),
                key_fingerprint(z85_key),
                count,
            )
        return False


def is_loopback(endpoint: str) -> bool:
    if not endpoint.startswith("tcp://"):
        return endpoint.startswith(("ipc://", "inproc://"))
    host = urlsplit(endpoint).hostname or ""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


class LearnerServer:
    def __init__(
        self, config: ServerConfig, ingest: Ingest, welcome: dict[str, Any], limits: Limits | None = None
    ):
        if config.curve_secret and not config.allow_keys:
            raise ValueError("--curve-secret needs --allow-keys DIR (the public keys of the allowed actors)")
        if not config.curve_secret and not is_loopback(config.bind):
            _log.warning(
                "WARNING: binding %s WITHOUT encryption or authentication: anyone who can reach this "
                "port can send steps and receive the policy. Use `realrl keys generate` and "
                "--curve-secret/--allow-keys, or bind tcp://127.0.0.1 and tunnel.",
                config.bind,
            )
        self.config, self.ingest, self.limits = config, ingest, limits or Limits()
        self.incarnation = secrets.token_hex(8)  # changes per process: actors notice a restart
        self.welcome = {**welcome, "learner": self.incarnation, "spec": ingest.spec.to_json()}
        self.connections: dict[bytes, Connection] = {}
        self.endpoint: str | None = None
        self._weights: tuple[int, list, np.ndarray] | None = None
        self._weights_lock = threading.Lock()
        self._wakeup = os.pipe()
        os.set_blocking(self._wakeup[0], False)
        os.set_blocking(self._wakeup[1], False)
        self._stop = threading.Event()
        self._finishing = threading.Event()
        self._told_done: set[bytes] = set()
        self._ready = threading.Event()
        self._bind_error: BaseException | None = None
        self.error: BaseException | None = None  # set if the server thread died; training stops
        self._thread = threading.Thread(target=self._serve, name="learner-server", daemon=True)
        # With fsync_journal, fsync runs on its own thread, overlapping the next batch; acks wait.
        self._pending_acks: list[tuple[int, list]] = []  # (journal end, acks), oldest first
        self._durable = 0  # journal offset known to be on disk
        self._sync_wanted = threading.Event()
        self._syncer = threading.Thread(target=self._sync_loop, name="journal-sync", daemon=True)
        self._bye_reason = "learner stopping"

    # -- called from the training loop ---------------------------------------------------------
    def start(self) -> str:
        """Bind and start serving; returns the bound endpoint (with the port a * resolved to)."""
        self._thread.start()
        self._ready.wait()
        if self._bind_error is not None:
            raise self._bind_error
        return self.endpoint

    def publish(self, version: int, manifest: list, blob: np.ndarray) -> None:
        """New policy weights: every live actor gets them soon, new actors at once."""
        with self._weights_lock:
            self._weights = (version, manifest, blob)
        self._wake()

    @property
    def weights_version(self) -> int:
        return self._weights[0] if self._weights else -1

    def live_actors(self) -> list[str]:
        return sorted({c.actor for c in list(self.connections.values())})

    def _wake(self) -> None:
        """Interrupt the server thread's poll (new weights go out now, not at the next tick)."""
        with contextlib.suppress(BlockingIOError):  # the pipe is full of wake-ups already
            os.write(self._wakeup[1], b"w")

    def finish(self) -> None:
        """Training is over: tell every actor (and any that connects later) to stop acting. The
        server keeps serving, so their last records still get stored and acked."""
        self._finishing.set()

    def stop(self, reason: str = "learner stopping") -> None:
        """Say bye to every actor (with `reason`; 'done' tells them training is over) and stop."""
        self._bye_reason = reason
        self._stop.set()
        self._wake()
        self._thread.join(timeout=10)
        for fd in self._wakeup:
            os.close(fd)

    # -- the server thread ---------------------------------------------------------------------
    def _serve(self) -> None:
        context = zmq.Context(io_threads=2)  # weight pushes to several actors go out in parallel
        auth = None
        try:
            socket = context.socket(zmq.ROUTER)
            socket.setsockopt(zmq.LINGER, 500)
            socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
            socket.setsockopt(zmq.RCVHWM, 10_000)
            if self.config.curve_secret:
                auth = self._start_curve(context, socket)
            socket.bind(self.config.bind)
            self.endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        except (zmq.ZMQError, OSError, ValueError) as error:
            self._bind_error = ValueError(f"cannot serve on {self.config.bind}: {error}")
            self._ready.set()
            context.destroy(linger=0)
            return
        self._ready.set()
        self._syncer.start()
        _log.info("learner serving on %s (%s)", self.endpoint, "CURVE" if auth else "no encryption")
        next_heartbeat = 0.0
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(self._wakeup[0], zmq.POLLIN)
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(1 if self._pending_acks else 10))
                if self._wakeup[0] in events:
                    while _drain(self._wakeup[0]):
                        pass
                if socket in events:
                    self._handle_batch(socket)
                self._send_durable_acks(socket)
                now = time.monotonic()
                self._push_weights(socket)
                if self._finishing.is_set():
                    self._tell_done(socket)
                if now >= next_heartbeat:
                    next_heartbeat = now + self.config.heartbeat_s
                    self._heartbeat(socket, now)
        except Exception as error:  # a bug or a full disk: the training loop must hear of it
            _log.exception("the learner server stopped")
            self.error = error
        try:
            self._durable = self.ingest.journal.sync()
            self._send_durable_acks(socket)  # the last batch's acks (sync() flushed the writer)
            for identity in list(self.connections):
                self._send(socket, identity, encode("bye", {"reason": self._bye_reason}))
        finally:
            self._sync_wanted.set()
            socket.close(linger=500)
            if auth is not None:
                auth.stop()
            context.term()

    def _start_curve(self, context: zmq.Context, socket: zmq.Socket):

        public, secret = zmq.auth.load_certificate(self.config.curve_secret)
        if secret is None:
            raise ValueError(f"{self.config.curve_secret} holds no secret key (use NAME.key_secret)")
        allowed = Path(self.config.allow_keys)
        if not allowed.is_dir() or not any(allowed.glob("*.key")):
            raise ValueError(f"--allow-keys {allowed}: no public NAME.key files there")
        auth = _Authenticator(context, allowed_keys(allowed))
        auth.start()
        auth.configure_curve_callback(domain="*", credentials_provider=auth)
        socket.curve_secretkey, socket.curve_publickey, socket.curve_server = secret, public, True
        return auth

    def _handle_batch(self, socket: zmq.Socket) -> None:
        received = []
        while len(received) < self.config.batch_messages:
            try:
                frame = socket.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            frames = [frame]
            while frame.more:  # the frame knows; recv_multipart asks the socket per frame (slower)
                frame = socket.recv(copy=False)
                frames.append(frame)
            received.append(frames)
        replies: list[tuple[bytes, list]] = []
        with self.ingest.lock:
            for frames in received:
                self._handle(frames[0].bytes, frames[1:], replies)
            acks = self.ingest.commit(sync=False)  # stored in the buffer now, acked once on disk
            resends = self.ingest.take_resends()
            end = self.ingest.journal.end
        by_actor = {c.actor: identity for identity, c in self.connections.items()} if resends else {}
        for actor, session, after in resends:
            if actor in by_actor:
                replies.append((by_actor[actor], encode("resend", {"session": session, "after": after})))
        for identity, message in replies:
            self._send(socket, identity, message)
        if acks:
            self._pending_acks.append((end, acks))
            if self.config.fsync_journal:
                self._sync_wanted.set()

    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            self._sync_wanted.wait()
            self._sync_wanted.clear()
            if not self._stop.is_set():
                self._durable = self.ingest.journal.sync()

    def _send_durable_acks(self, socket: zmq.Socket) -> None:
        """Acks whose records are on disk: an ack means durable."""
        # Without fsync, written to the kernel is durable enough: it survives a SIGKILL of us.
        durable = self._durable if self.config.fsync_journal else self.ingest.journal.written
        done = 0
        for end, _ in self._pending_acks:
            if end > durable:
                break
            done += 1
        if not done:
            return
        ready, self._pending_acks = self._pending_acks[:done], self._pending_acks[done:]
        by_actor = {c.actor: identity for identity, c in self.connections.items()}
        newest = {}  # acks are cumulative: the last one per session says it all
        for _, acks in ready:
            newest.update({(actor, session): through for actor, session, through in acks})
        for (actor, session), through in newest.items():
            if actor in by_actor:
                self._send(socket, by_actor[actor], encode("ack", {"session": session, "through": through}))

    def _handle(self, identity: bytes, body: list, replies: list) -> None:
        connection = self.connections.get(identity)
        actor = connection.actor if connection else None
        try:
            message = decode(body, self.limits)
        except WireError as error:
            self.ingest.reject(error.reason, actor, str(error))
            return
        if message.type == "hello":
            key_name = body[0].get("User-Id") if self.config.curve_secret else None
            self._hello(identity, message.header, key_name, replies)
            return
        if connection is None:
            self.ingest.reject("no_hello", None, f"a {message.type!r} message before hello")
            replies.append((identity, encode("bye", {"reason": "hello first"})))
            return
        connection.last_heard = time.monotonic()
        if message.type == "step":
            self.ingest.offer(connection.actor, message, body)
        elif message.type == "skip":
            session, through = message.header.get("session"), message.header.get("through")
            if isinstance(session, str) and isinstance(through, int) and not isinstance(through, bool):
                self.ingest.skip(connection.actor, session, through)
            else:
                self.ingest.reject("bad_skip", actor, "skip needs a string 'session' and an int 'through'")
        elif message.type == "bye":
            self._drop(identity, "said bye")
        elif message.type != "heartbeat":
            self.ingest.reject("unexpected_type", actor, f"an actor sent a {message.type!r} message")

    def _hello(self, identity: bytes, header: dict, key_name: str | None, replies: list) -> None:
        actor, session = header.get("actor"), header.get("session")
        if not all(isinstance(x, str) and 0 < len(x) <= 128 for x in (actor, session)):
            self.ingest.reject("bad_hello", None, "hello needs string 'actor' and 'session'")
            return
        refusal = self._refusal(header, key_name)
        if refusal is not None:
            self.ingest.reject("refused_hello", actor, refusal)
            replies.append((identity, encode("bye", {"reason": refusal, "refused": True})))
            return
        now = time.monotonic()
        known = False
        for old_identity, old in list(self.connections.items()):
            if old.actor != actor:
                continue
            if old.session == session:  # a reconnect, or a hello repeated while we were stalled
                known = old_identity == identity
            elif now - old.last_heard < self.config.actor_timeout_s:  # not dead yet: someone else
                busy = (
                    f"actor id {actor!r} is in use by another live actor (session {old.session}): give "
                    "each actor process its own --actor-id"
                )
                self.ingest.reject("duplicate_actor", actor, f"session {session}: {busy}")
                replies.append((identity, encode("bye", {"reason": busy, "retry": True})))
                return
            else:  # a restarted actor: its old session is over
                self.ingest.end_session(old.actor, old.session)
            del self.connections[old_identity]
        self.connections[identity] = Connection(actor, session, now)
        self.ingest.actor(actor)
        if not known:
            _log.info("actor %s connected (session %s)", actor, session)
        replies.append((identity, encode("welcome", {**self.welcome, "hello": header.get("hello")})))

    def _refusal(self, header: dict, key_name: str | None) -> str | None:
        """Why this hello can never be let in, or None."""
        actor, task, spec = header["actor"], header.get("task"), header.get("spec")
        if key_name is not None and actor != key_name:
            return (
                f"actor id {actor!r} does not match its CURVE key ({key_name}.key in the learner's "
                f"--allow-keys): an allowed key connects only as --actor-id {key_name}"
            )
        if task != self.welcome.get("task"):
            return f"task mismatch: this learner trains {self.welcome.get('task')}, the actor runs {task}"
        if spec != self.welcome["spec"]:
            return (
                f"observation spec mismatch: the learner expects {self.welcome['spec']}, the actor sends "
                f"{str(spec)[:300]} (check --task, --obs and --image-size on both sides)"
            )
        return None

    def _push_weights(self, socket: zmq.Socket) -> None:
        with self._weights_lock:
            weights = self._weights
        if weights is None:
            return
        version, manifest, blob = weights
        for identity, connection in list(self.connections.items()):
            if connection.weights_version < version:
                message = encode("weights", {"version": version, "tensors": manifest}, {"blob": blob})
                if self._send(socket, identity, message):
                    connection.weights_version = version

    def _tell_done(self, socket: zmq.Socket) -> None:
        for identity in list(self.connections):
            if identity not in self._told_done and self._send(
                socket, identity, encode("bye", {"reason": "done"})
            ):
                self._told_done.add(identity)

    def _heartbeat(self, socket: zmq.Socket, now: float) -> None:
        beat = encode("heartbeat", {"learner": self.incarnation, "version": self.weights_version})
        for identity, connection in list(self.connections.items()):
            if now - connection.last_heard > self.config.actor_timeout_s:
                _log.warning(
                    "actor %s silent for %.0f s: marked dead", connection.actor, now - connection.last_heard
                )
                with self.ingest.lock:
                    self._drop(identity, "timed out")
            else:
                self._send(socket, identity, beat)

    def _drop(self, identity: bytes, why: str) -> None:
        connection = self.connections.pop(identity, None)
        if connection is not None:
            self.ingest.end_session(connection.actor, connection.session)
            _log.info("actor %s (session %s) %s", connection.actor, connection.session, why)

    def _send(self, socket: zmq.Socket, identity: bytes, frames: list) -> bool:
        """Never blocks: a full or vanished peer loses this message (acks are cumulative, weights
        are retried, heartbeats repeat)."""
        try:
            socket.send_multipart([identity, *frames], zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            return False
        except zmq.ZMQError as error:
            if error.errno == zmq.EHOSTUNREACH:  # gone: the heartbeat timeout frees its state
                return False
            raise


def _drain(fd: int) -> bool:
    try:
        return bool(os.read(fd, 4096))
    except BlockingIOError:
        return False
