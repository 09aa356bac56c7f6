"""`realrl bench transport`: the actor/learner link on loopback, measured through the real code.

- ingest_steps_per_s: sender processes blast step records with two 128x128 camera frames at a
  LearnerServer; counted from the first to the last record stored in the replay buffer, journal
  fsync and episode assembly included.
- weight_push_p99_ms: 4 actor processes (ActorTransport) receive a ~10 MB policy pushed repeatedly;
  latency from `publish` on the learner to the weights being ready for the actor's control loop.
- send_overhead_p99_ms: the control loop's cost of one step (encode the record + queue it) while the
  transport thread spools and sends in the background, at a fixed control rate.
Each figure is a median over repeats (throughput) or a p99 over all samples (latency)."""

from __future__ import annotations

import contextlib
import multiprocessing
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

CAMERAS = ("front", "wrist")
STATE_DIM, ACTION_DIM, EPISODE = 32, 7, 100

_TASK = "bench"  # the learner checks that an actor's hello names its task


def _spec(image_size: int):
    from formats.wire import RecordSpec

    return RecordSpec(STATE_DIM, ACTION_DIM, {name: (image_size, image_size, 3) for name in CAMERAS})


def _record(actor: str, session: str, seq: int, image_size: int, frames: dict):
    from formats.wire import StepRecord

    t = seq % EPISODE
    done = t == EPISODE - 1
    return StepRecord(
        actor=actor, session=session, seq=seq, episode=seq // EPISODE, t=t,
        state=np.full(STATE_DIM, seq, np.float32), images=frames, action=np.zeros(ACTION_DIM, np.float32),
        reward=float(done), terminated=done, truncated=False, final_state=np.zeros(STATE_DIM, np.float32),
        final_images=frames,
    )  # fmt: skip


@contextlib.contextmanager
def _serving(image_size: int, capacity: int, journal_root: str | None = None):
    """A started LearnerServer over a fresh replay and journal in a temp dir (under `journal_root`);
    yields (server, ingest, endpoint, temp dir), stopped and cleaned up afterwards."""
    from learner.configs import ServerConfig
    from learner.ingest import Ingest
    from learner.journal import Journal
    from learner.replay import ReplayBuffer
    from learner.server import LearnerServer

    with tempfile.TemporaryDirectory(prefix="realrl-bench-", dir=journal_root) as tmp:
        spec = _spec(image_size)
        buffer = ReplayBuffer(capacity, STATE_DIM, ACTION_DIM, spec.image_shapes)
        ingest = Ingest(spec, buffer, Journal(Path(tmp) / "journal"))
        welcome = {"task": _TASK, "obs": "pixels", "agent": {}, "random_steps": 0}
        # The bench's senders send no heartbeats: never mark one dead (its later steps would be refused).
        config = ServerConfig(bind="tcp://127.0.0.1:*", heartbeat_s=0.5, actor_timeout_s=STALL_S)
        server = LearnerServer(config, ingest, welcome)
        endpoint = server.start()
        try:
            yield server, ingest, endpoint, Path(tmp)
        finally:
            server.stop()
            ingest.journal.close()


STALL_S = 300.0  # a benchmark that stalls this long fails with what it saw, instead of hanging


def _check_deadline(deadline: float, progress: str) -> None:
    if time.monotonic() > deadline:
        raise RuntimeError(f"bench transport stalled for {STALL_S:.0f} s: {progress}")


def _start_processes(target, args_per_process: list[tuple]) -> list:
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=target, args=args) for args in args_per_process]
    for process in processes:
        process.start()
    return processes


# -- ingest ----------------------------------------------------------------------------------------
def _sender(endpoint: str, actor: str, steps: int, image_size: int, go) -> None:
    import zmq

    from formats.wire import decode, encode, encode_step

    rng = np.random.default_rng(0)
    frames = {name: rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8) for name in CAMERAS}
    session = uuid.uuid4().hex[:12]
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.connect(endpoint)
    messages = [encode_step(_record(actor, session, seq, image_size, frames)) for seq in range(steps)]
    hello = {"actor": actor, "session": session, "task": _TASK, "spec": _spec(image_size).to_json()}
    socket.send_multipart(encode("hello", hello))
    socket.recv_multipart()  # welcome
    go.wait()
    acked = -1

    def read_replies(timeout_ms: int) -> int:
        """Acks (the newest seq acked), weights and heartbeats: read, so the learner never waits on us."""
        newest = acked
        while socket.poll(timeout_ms):
            reply = decode(socket.recv_multipart())
            if reply.header.get("type") == "ack" and reply.header.get("session") == session:
                newest = max(newest, int(reply.header["through"]))
            timeout_ms = 0
        return newest

    for message in messages:
        socket.send_multipart(message, copy=False)
        acked = read_replies(0)
    deadline = time.monotonic() + STALL_S
    while acked < steps - 1 and time.monotonic() < deadline:  # every step stored before we leave
        acked = read_replies(100)
    socket.close(linger=0)
    context.term()


def measure_ingest(
    senders: int, steps_per_sender: int, image_size: int, journal_root: str | None = None
) -> float:
    """Steps/s stored. The journal goes under `journal_root` (default: the temp dir, on disk);
    /dev/shm takes the disk out of the measurement."""
    with _serving(image_size, 4 * EPISODE * senders + 8, journal_root) as (_, ingest, endpoint, _):
        go = multiprocessing.get_context("spawn").Event()
        args = [(endpoint, f"bench-{k}", steps_per_sender, image_size, go) for k in range(senders)]
        processes = _start_processes(_sender, args)
        deadline = time.monotonic() + STALL_S
        while len(ingest.actors) < senders:  # every sender said hello and is ready
            _check_deadline(deadline, f"{len(ingest.actors)} of {senders} senders said hello")
            time.sleep(0.01)
        time.sleep(1.0)  # encoding done: only the sending is timed
        go_time = time.perf_counter()
        go.set()
        total = senders * steps_per_sender
        first_time = None
        deadline = time.monotonic() + STALL_S
        while ingest.steps_stored < total:
            _check_deadline(
                deadline, f"{ingest.steps_stored} of {total} steps stored ({dict(ingest.rejected_messages)})"
            )
            if first_time is None and ingest.steps_stored > 0:
                first_time, first_count = time.perf_counter(), ingest.steps_stored
            time.sleep(0.01)  # coarse: a busy poll here would steal the GIL from the server thread
        if first_time is None:  # every step was stored before this thread first looked (descheduled
            first_time, first_count = go_time, 0  # on a loaded machine): time them all from the go
        elapsed = time.perf_counter() - first_time
        for process in processes:
            process.join()
    return (total - first_count) / elapsed


# -- weight push ---------------------------------------------------------------------------------
def _weights_receiver(endpoint: str, actor: str, pushes: int, out, image_size: int) -> None:
    from actors.config import TransportConfig
    from actors.transport import ActorTransport

    with tempfile.TemporaryDirectory() as spool:
        hello = {"task": _TASK, "spec": _spec(image_size).to_json()}
        transport = ActorTransport(
            TransportConfig(learner=endpoint), actor, uuid.uuid4().hex[:12], spool, hello
        )
        transport.start()
        arrivals, deadline = {}, time.monotonic() + 30 + pushes
        while pushes - 1 not in arrivals and time.monotonic() < deadline:  # the server may skip a
            weights = transport.take_weights()  # version when a newer one is published first
            if weights is not None:
                arrivals[weights[0]] = time.monotonic()
            time.sleep(0.001)  # a tighter poll would steal the GIL from the transport thread
        transport.close(wait_s=0)
    out.put(arrivals)


def measure_weight_push(actors: int, megabytes: float, pushes: int, image_size: int) -> list[float]:
    from formats.wire import pack_weights

    rng = np.random.default_rng(0)
    per_tensor = 256 * 1024  # 1 MB float32 tensors, like a policy's big layers
    tensors = {
        f"layer{k}.weight": rng.standard_normal(per_tensor).astype(np.float32) for k in range(int(megabytes))
    }
    with _serving(image_size, capacity=16) as (server, _, endpoint, _):
        queue = multiprocessing.get_context("spawn").Queue()
        args = [(endpoint, f"w{k}", pushes, queue, image_size) for k in range(actors)]
        processes = _start_processes(_weights_receiver, args)
        while len(server.connections) < actors:
            time.sleep(0.01)
        published = {}
        for version in range(pushes):
            manifest, blob = pack_weights(tensors)  # the learner packs a fresh copy per push
            published[version] = time.monotonic()
            server.publish(version, manifest, blob)
            time.sleep(0.25)
        arrivals = [queue.get(timeout=60) for _ in processes]
        for process in processes:
            process.join()
    return [(when - published[v]) * 1000 for arrival in arrivals for v, when in arrival.items()]


# -- send overhead ---------------------------------------------------------------------------------
def measure_send_overhead(steps: int, hz: float, image_size: int) -> list[float]:
    from actors.config import TransportConfig
    from actors.transport import ActorTransport
    from formats.wire import encode_step

    rng = np.random.default_rng(0)
    frames = {name: rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8) for name in CAMERAS}
    with _serving(image_size, steps + steps // EPISODE + 8) as (_, ingest, endpoint, tmp):
        session = uuid.uuid4().hex[:12]
        hello = {"task": _TASK, "spec": _spec(image_size).to_json()}
        transport = ActorTransport(TransportConfig(learner=endpoint), "bench", session, tmp / "spool", hello)
        transport.start()
        transport.welcomed.wait(30)
        costs, next_tick = [], time.perf_counter()
        for seq in range(steps):
            record = _record("bench", session, seq, image_size, frames)
            start = time.perf_counter()
            transport.send(seq, encode_step(record))
            costs.append((time.perf_counter() - start) * 1000)
            next_tick += 1.0 / hz
            time.sleep(max(0.0, next_tick - time.perf_counter()))
        transport.close(wait_s=30, last_seq=steps - 1)
        stored = ingest.steps_stored
    if stored != steps:
        raise RuntimeError(f"send-overhead run stored {stored} of {steps} steps")
    return costs


def p99(samples: list[float]) -> float:
    return float(np.percentile(samples, 99))


def run(
    *,
    senders: int = 2,
    steps_per_sender: int = 3000,
    repeats: int = 3,
    actors: int = 4,
    weights_mb: float = 10,
    pushes: int = 40,
    send_steps: int = 1000,
    send_hz: float = 100.0,
    image_size: int = 128,
) -> dict:
    rates = [measure_ingest(senders, steps_per_sender, image_size) for _ in range(repeats)]
    memory = Path("/dev/shm")
    memory_rates = (
        [measure_ingest(senders, steps_per_sender, image_size, str(memory)) for _ in range(repeats)]
        if memory.is_dir()
        else []
    )
    push_ms = measure_weight_push(actors, weights_mb, pushes, image_size)
    send_ms = measure_send_overhead(send_steps, send_hz, image_size)
    return {
        "ingest_steps_per_s": round(statistics.median(rates), 1),
        "ingest_runs_steps_per_s": [round(r, 1) for r in rates],
        # The same with the journal in memory (tmpfs): the learner without the disk under it.
        "ingest_memory_journal_steps_per_s": round(statistics.median(memory_rates), 1)
        if memory_rates
        else None,
        "journal_mb_per_step": round(
            (2 * image_size * image_size * 3 + 4 * (STATE_DIM + ACTION_DIM)) / 2**20, 3
        ),
        "ingest_senders": senders,
        "image_shape": [image_size, image_size, 3],
        "cameras": len(CAMERAS),
        "weight_push_p99_ms": round(p99(push_ms), 2),
        "weight_push_median_ms": round(statistics.median(push_ms), 2),
        "weight_mb": weights_mb,
        "weight_pushes": pushes,
        "actors": actors,
        "send_overhead_p99_ms": round(p99(send_ms), 3),
        "send_overhead_median_ms": round(statistics.median(send_ms), 3),
        "send_steps": send_steps,
        "send_hz": send_hz,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
