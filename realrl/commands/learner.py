"""`realrl learner` (the GPU box) and `realrl train --actors N` (one learner and N actor processes on
this machine over loopback, the same code as two machines): the training loop fed by the learner
server's ingest (learner.sources.IngestSource), wired in realrl.commands.train.build_loop."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from learner.configs import ServerConfig, TrainConfig
from realrl.commands.train import build_loop

_log = logging.getLogger(__name__)


def run_learner(
    config: TrainConfig,
    out: str | Path,
    server: ServerConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    stop: threading.Event | None = None,
) -> dict:
    """`realrl learner`: serve actors started elsewhere until `steps` env steps arrived (then tell
    them to stop) or `stop` is set (SIGINT/SIGTERM: then checkpoint and exit 0)."""
    if config.actors:
        raise ValueError(
            "--actors starts local actors under `realrl train`; `realrl learner` serves actors "
            "started elsewhere with `realrl actor`"
        )
    return build_loop(config, out, server=server, resume=resume, progress=progress, stop=stop).run(stop)


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
        "--parent-pid", str(os.getpid()),  # a SIGKILLed learner leaves no actor behind
        "--json",
    ]  # fmt: skip


def train_with_actors(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop: threading.Event | None = None,
) -> dict:
    """`realrl train --actors N`: this process is the learner on a free loopback port; N actor
    processes stream to it. Their logs and final JSON lines go to <out>/actors/."""
    out = Path(out)
    processes: list[subprocess.Popen] = []
    stop = stop or threading.Event()
    failed: list[str] = []  # why an actor exited early (the run stops: it would wait for it forever)
    over = threading.Event()  # the loop ended: actors exit now, as they are told

    def start_actors(endpoint: str) -> None:
        (out / "actors").mkdir(exist_ok=True)
        for index in range(config.actors):
            with open(out / "actors" / f"actor-{index}.log", "ab") as log_file:
                processes.append(
                    subprocess.Popen(
                        actor_command(loop.config, endpoint, index, out),  # a resumed run's saved config
                        stdout=subprocess.PIPE,
                        stderr=log_file,
                        start_new_session=True,  # a Ctrl-C reaches the learner, which then stops them
                    )
                )
        threading.Thread(target=_watch, args=(processes, out, stop, over, failed), daemon=True).start()

    server = ServerConfig(bind="tcp://127.0.0.1:*")
    loop = build_loop(
        config, out, server=server, on_ready=start_actors, resume=resume, progress=progress, stop=stop
    )
    try:
        summary = loop.run(stop)
    finally:
        over.set()
        finished = loop.env_steps >= loop.config.steps
        finals = [_stop_actor(p, finished) for p in processes]
    if failed:
        raise RuntimeError(f"{failed[0]}; the run checkpointed and stopped (--resume continues it)")
    summary["actor_processes"] = finals
    return summary


def _watch(
    processes: list[subprocess.Popen], out: Path, stop: threading.Event, over: threading.Event, failed: list
) -> None:
    """Stop the run when an actor process exits with an error before the run is over (say a
    leftover actor of a killed run still holds its spool): say why instead of waiting for it."""
    while not (stop.is_set() or over.is_set()):
        for index, process in enumerate(processes):
            code = process.poll()
            if code and not over.is_set():  # 0 or None: finished when told, or running
                log = out / "actors" / f"actor-{index}.log"
                lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
                failed.append(
                    f"actor-{index} exited with status {code}: {lines[-1] if lines else '?'} ({log})"
                )
                _log.error("%s: stopping the run", failed[0])
                stop.set()
                return
        over.wait(0.5)


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
