"""Helpers for the actor/learner tests: real `realrl learner` and `realrl actor` processes on
loopback, small networks and fast heartbeats so faults are noticed within seconds."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

# Small and fast: the point is the plumbing, not learning.
LEARNER_FLAGS = [
    "--task", "PickCube", "--obs", "state", "--demo-episodes", "2", "--steps", "1000000",
    "--learning-starts", "32", "--batch-size", "32", "--agent.hidden", "32", "32", "--agent.critics", "2",
    "--log-every", "25", "--eval-every", "1000000", "--checkpoint-every", "150",
    "--heartbeat-s", "0.2", "--actor-timeout-s", "3", "--weights-every", "5", "--weights-every-s", "0.5",
    "--device", "cpu",
]  # fmt: skip
ACTOR_FLAGS = ["--task", "PickCube", "--obs", "state", "--heartbeat-s", "0.2", "--learner-timeout-s", "1.5"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Starts realrl processes with their stderr in files; kills leftovers at the end."""

    def __init__(self, root: Path) -> None:
        self.root, self.started = root, []
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
        process = subprocess.Popen(
            [sys.executable, "-m", "realrl.cli", *args], stdout=subprocess.PIPE, stderr=log, env=self.env
        )
        process.name = name
        self.started.append(process)
        return process

    def learner(self, name: str, out: Path, port: int, *extra: str) -> subprocess.Popen:
        return self.start(
            name,
            "learner",
            "--json",
            "--out",
            str(out),
            "--bind",
            f"tcp://127.0.0.1:{port}",
            *LEARNER_FLAGS,
            *extra,
        )

    def actor(self, name: str, port: int, *extra: str) -> subprocess.Popen:
        spool = self.root / "spool" / name
        return self.start(
            name, "actor", *ACTOR_FLAGS, "--learner", f"tcp://127.0.0.1:{port}", "--actor-id", name,
            "--spool", str(spool), *extra,
        )  # fmt: skip

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()


def stop(process: subprocess.Popen, sig=signal.SIGINT, timeout: float = 60) -> tuple[int, dict | None]:
    """Signal a process and return (exit code, its last JSON line on stdout)."""
    process.send_signal(sig)
    stdout, _ = process.communicate(timeout=timeout)
    lines = [line for line in stdout.decode(errors="replace").splitlines() if line.startswith("{")]
    return process.returncode, json.loads(lines[-1]) if lines else None


def metrics(out: Path) -> list[dict]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(condition, timeout: float, what: str, processes: Processes | None = None):
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
    loop.metrics.close()
    return found
