"""Helpers for the actor/learner tests: real `realrl learner` and `realrl actor` processes on
loopback, small networks and fast heartbeats so faults are noticed within seconds.

The tests assert events and exact accounting, never how much happened in some time: every wait
here is for an event, and HANG_S only stops a test that hangs (CI is a loaded 2-core machine)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

HANG_S = 300  # an upper bound that only stops a hung test; nothing is expected to take this long

# Small and fast: the point is the plumbing, not learning.
LEARNER_FLAGS = [
    "--task", "PickCube", "--obs", "state", "--demo-episodes", "2", "--steps", "1000000",
    "--learning-starts", "32", "--batch-size", "32", "--agent.hidden", "32", "32", "--agent.critics", "2",
    "--log-every", "25", "--eval-every", "1000000", "--checkpoint-every", "150",
    "--heartbeat-s", "0.2", "--actor-timeout-s", "3", "--weights-every", "5", "--weights-every-s", "0.5",
    "--device", "cpu",
]  # fmt: skip
# A stopped actor waits for the acks of all its steps: bounded only against a hang, so "every step
# acked" never depends on how fast a loaded machine delivers them.
ACTOR_FLAGS = [
    "--task", "PickCube", "--obs", "state", "--heartbeat-s", "0.2", "--learner-timeout-s", "1.5",
    "--wait-acks-s", "120",
]  # fmt: skip
# What a process logs once its SIGINT/SIGTERM handlers are installed (a signal before that kills it
# without its final JSON line).
READY = {"learner": "learner serving on ", "actor": "waiting for the learner"}


class Processes:
    """Starts realrl processes with their stderr in files; kills leftovers at the end."""

    def __init__(self, root: Path) -> None:
        self.root, self.started = root, []
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}

    def start(self, name: str, verb: str, *args: str) -> subprocess.Popen:
        """`realrl VERB ARGS...` with its stderr in <name>.log (appended to: a restart shares it)."""
        ready_before = self.log(name).count(READY[verb]) if (self.root / f"{name}.log").exists() else 0
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
        process = subprocess.Popen(
            [sys.executable, "-m", "realrl.cli", verb, *args],
            stdout=subprocess.PIPE,
            stderr=log,
            env=self.env,
        )
        process.name, process.verb, process.ready_before = name, verb, ready_before
        self.started.append(process)
        return process

    def learner(self, name: str, out: Path, *extra: str, bind: str = "tcp://127.0.0.1:*") -> subprocess.Popen:
        """A learner; by default on a port it picks itself (see `endpoint`), so no other process
        can take the port between a test choosing it and the learner binding it."""
        return self.start(
            name, "learner", "--json", "--out", str(out), "--bind", bind, *LEARNER_FLAGS, *extra
        )

    def actor(self, name: str, endpoint: str, *extra: str) -> subprocess.Popen:
        spool = self.root / "spool" / name
        return self.start(
            name, "actor", *ACTOR_FLAGS, "--learner", endpoint, "--actor-id", name, "--spool", str(spool),
            *extra,
        )  # fmt: skip

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def wait_ready(self, process: subprocess.Popen) -> str:
        """Block until the process logged that it is serving (a learner) or waiting for one (an
        actor); returns that log line."""

        def ready_line() -> str | None:
            lines = [line for line in self.log(process.name).splitlines() if READY[process.verb] in line]
            return lines[process.ready_before] if len(lines) > process.ready_before else None

        return wait_for(ready_line, HANG_S, f"{process.name} to start", self)

    def endpoint(self, learner: subprocess.Popen) -> str:
        """The endpoint the learner bound, from its log."""
        return re.search(r"learner serving on (tcp://\S+)", self.wait_ready(learner))[1]

    def stop(self, process: subprocess.Popen, sig=signal.SIGINT) -> tuple[int, dict | None]:
        """Signal a started process and return (exit code, its last JSON line on stdout)."""
        self.wait_ready(process)
        process.send_signal(sig)
        stdout, _ = process.communicate(timeout=HANG_S)
        lines = [line for line in stdout.decode(errors="replace").splitlines() if line.startswith("{")]
        return process.returncode, json.loads(lines[-1]) if lines else None

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()


class CurveKeys:
    """Key pairs (`realrl keys generate`) for the learner and each named actor in <root>/keys, and
    the learner's allow-list <root>/allow holding the public keys of `allowed` only."""

    def __init__(self, root: Path, actors: list[str], allowed: list[str]) -> None:
        from realrl.commands.keys import generate_keys

        self.keys, self.allow = root / "keys", root / "allow"
        for name in ("learner", *actors):
            generate_keys(self.keys, name)
        self.allow.mkdir()
        for name in allowed:
            (self.allow / f"{name}.key").write_bytes((self.keys / f"{name}.key").read_bytes())

    def learner_flags(self) -> list[str]:
        return ["--curve-secret", str(self.keys / "learner.key_secret"), "--allow-keys", str(self.allow)]

    def actor_flags(self, name: str) -> list[str]:
        """An actor that holds `name`'s key pair and knows the learner's public key."""
        secret, learner = self.keys / f"{name}.key_secret", self.keys / "learner.key"
        return ["--curve-secret", str(secret), "--learner-key", str(learner)]


def freeze(process: subprocess.Popen) -> None:
    """SIGSTOP, and wait until every thread of the process is stopped (a signal is asynchronous: a
    thread may finish a system call first), so that what it wrote to disk no longer changes."""
    process.send_signal(signal.SIGSTOP)

    def all_stopped() -> bool:
        states = []
        for stat in Path(f"/proc/{process.pid}/task").glob("*/stat"):
            try:
                states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
            except (FileNotFoundError, IndexError):  # a thread that just ended
                continue
        return bool(states) and all(state in "tT" for state in states)

    wait_for(all_stopped, HANG_S, f"{process.name} to stop (SIGSTOP)")


def metrics(out: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl, read while a learner may be writing it: a row counts once
    its newline is there (a resumed learner rewrites the file in more than one write)."""
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    *complete, _ = path.read_text().split("\n")  # the last piece is "" or a row being written
    return [json.loads(line) for line in complete if line.strip()]


def wait_for(condition, timeout: float, what: str, processes: Processes | None = None):
    """Poll `condition` until it returns something true (returned); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    logs = ""
    if processes is not None:
        logs = "\n".join(f"--- {p.name}\n{processes.log(p.name)[-3000:]}" for p in processes.started)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")


def latest_row(out: Path) -> dict:
    rows = [r for r in metrics(out) if "actors" in r]
    return rows[-1] if rows else {}


def actor_row(out: Path, actor: str) -> dict:
    """The actor's stats in the newest training row ({} before it has any)."""
    return latest_row(out).get("actors", {}).get(actor, {})


def spooled_seqs(spool: Path) -> list[int]:
    """Seqs of the records in an actor's spool (every session's), i.e. those not acked yet."""
    return sorted(int(path.stem) for path in spool.glob("*/*.rec"))


def journal_past_checkpoint(out: Path) -> bool:
    """Whether the journal on disk holds records from where the latest checkpoint's journal replay
    starts, i.e. a learner resumed now replays at least one. Ask with the learner frozen (SIGSTOP)
    so that no checkpoint is half written; each record is one writev, so none is half written."""
    latest = out / "checkpoints" / "latest" / "counters.json"
    files = sorted((out / "replay" / "journal").glob("journal_*.log"))
    if not latest.exists() or not files:
        return False
    end = int(files[-1].stem.split("_")[1]) + files[-1].stat().st_size
    return end > json.loads(latest.read_text())["journal_start"]


def assert_exactly_once(found: dict, actor: str, session: str, recorded: int) -> None:
    """The session's records 0 .. recorded-1 are in the replay, each once (`found`: stored_steps)."""
    seqs = found[(actor, session)]
    assert len(seqs) == len(set(seqs)), f"{actor}/{session}: duplicated records"
    assert sorted(seqs) == list(range(recorded)), (
        f"{actor}/{session}: {len(seqs)} stored of {recorded} recorded"
    )


def stored_steps(out: Path) -> dict[tuple[str, str], list[int]]:
    """Resume the run the way `realrl learner --resume` does (checkpoint + journal) and list, per
    (actor, session), the seq of every step record in the replay buffer, in slot order."""
    from formats.config import load_config
    from learner.configs import ServerConfig, TrainConfig
    from learner.ingest import split_record_id
    from realrl.commands.train import build_loop

    config = load_config(TrainConfig, out / "config.json")
    loop = build_loop(config, out, server=ServerConfig(), resume=True, progress=False)
    buffer = loop.replay.online
    streams = {s.index: (s.actor, s.session) for s in loop.source.ingest.streams.values()}
    written = min(buffer.written, buffer.capacity)
    order = [(buffer.written - written + k) % buffer.capacity for k in range(written)]
    found: dict[tuple[str, str], list[int]] = {}
    for record_id in buffer.record_id[order].tolist():
        if record_id >= 0:
            index, seq = split_record_id(record_id)
            found.setdefault(streams[index], []).append(seq)
    loop.source.journal.close()
    loop.close()
    return found
