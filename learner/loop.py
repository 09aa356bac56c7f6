"""The one training loop. It pulls env steps from a step source (learner.sources: the in-process
actor of `--actors 0`, or the learner server's ingest), updates on the UTD schedule, evaluates,
checkpoints and logs, and does not know which source feeds it. The command layer wires the pieces.

Schedule: after `learning_starts` env steps the loop owes `utd` critic updates per env step; each
learn step makes `critic_actor_ratio` critic updates and one actor + temperature update. When the
source delivers steps faster than the updates are made (sim actors at full speed), the loop keeps
going after `steps` env steps arrived until it has made every update the schedule owes: a real
robot's steps are the expensive resource, so none goes unlearned, and pacing the actors would tie
their control rate to the learner's speed. On `stop` (SIGINT/SIGTERM) it stops the source (so
everything acked is in the replay), checkpoints and writes a final row with the final counts.

One process at a time holds a run directory (a lock, from open_run to the end of run()); --resume
continues a run where its checkpoint left it, and rows of metrics.jsonl never go back."""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from formats.config import from_dict, save_config, to_dict
from formats.episodes import Episode, read_manifest
from formats.files import DirectoryLock
from formats.progress import progress_bar
from learner.checkpoints import CRITIC_FILE, POLICY_FILE, Checkpoints, read_counters
from learner.configs import TrainConfig
from learner.metrics import MetricsWriter, read_rows
from learner.replay import MixedSampler, ReplayBuffer
from learner.replay_log import ReplayLog
from learner.sac import SACAlgorithm
from learner.sources import StepSource
from policies import Policy
from policies.encoders import ObservationEncoder
from policies.policy_files import save_critic, save_policy

_log = logging.getLogger(__name__)

Evaluate = Callable[[Policy], dict[str, Any]]  # policy -> {"success_rate", "eval_return", ...}


OWED_UPDATES_BAR = 100
"""Updates still owed when the last step arrives from which the finish shows a bar (fewer: a
learner that kept up, a moment's work)."""


class TrainingError(RuntimeError):
    """Training stopped on purpose (non-finite losses, bad data)."""


# -- the run directory and the replay -------------------------------------------------------------
RESIDUAL_CRITIC_WARMUP = 1000  # --critic-warmup's default under --residual (critic updates)
RUN_FIELDS = frozenset(
    {
        "preset",
        "algorithm",
        "residual",
        "base_policy_hash",
        "residual_scale",
        "task",
        "env",
        "obs",
        "image_size",
        "seed",
        "n_step",
        "buffer_capacity",
        "demos",
        "demo_episodes",
        "agent.hidden",
        "agent.critics",
        "agent.critic_impl",
        "agent.critic_layer_norm",
        "agent.encoder",
        "agent.encoder_hash",
    }
)
"""Fields a --resume cannot change: they shape the networks, the replay or the demos that the
checkpoint holds (other values make another run, in another --out)."""


def open_run(config: TrainConfig, out: Path, resume: bool) -> tuple[TrainConfig, DirectoryLock]:
    """Lock <out> for this process until the run ends (another process is refused, naming this one's
    PID); returns the config the run trains with, saved as <out>/config.json, and the lock.

    A run directory is never overwritten without --resume, and --resume needs one that holds a run.
    A resumed run keeps its saved config but for the fields `config` changes (from the command line,
    the saved config with the flags the user passed: realrl.commands.train.config_for_resume); they
    must not be RUN_FIELDS, and are checked, listed in one log line and saved."""
    if resume and not (out / "config.json").exists():  # asked first: the lock creates <out>
        saved_config(out)
    lock = DirectoryLock(out, "run directory")
    try:
        if resume:
            config = _resumed(config, out)
        elif (out / "metrics.jsonl").exists() or (out / "checkpoints").exists():
            raise ValueError(f"{out} already holds a run: pass --resume to continue it, or a new --out")
        save_config(config, out / "config.json")
    except BaseException:
        lock.release()
        raise
    return config, lock


def save_models(directory: Path, algorithm: SACAlgorithm, info: dict[str, Any]) -> None:
    """A checkpoint's model files: the policy, and the critic where it scores whole actions."""
    save_policy(directory / POLICY_FILE, algorithm.policy, info)
    verifier = algorithm.verifier()
    if verifier is not None:
        save_critic(directory / CRITIC_FILE, verifier, info)


def no_checkpoint(out: Path, why: str) -> ValueError:
    return ValueError(f"--resume: {out} holds no checkpoint ({why})")


def saved_config(out: Path) -> dict[str, Any]:
    """<out>/config.json as plain JSON, not checked yet (a bad saved value must not stop a --resume
    that gives its flag again), with today's defaults for the fields a config of an older version
    lacks."""
    path = out / "config.json"
    if not path.exists():
        raise no_checkpoint(out, "no run was started there; leave out --resume to start one")
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: not a config (a JSON object)")
    return _with_defaults(saved, to_dict(TrainConfig()))


def _with_defaults(saved: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    merged = dict(saved)
    for key, default in defaults.items():
        if key not in merged:
            merged[key] = default
        elif isinstance(default, dict) and isinstance(merged[key], dict):
            merged[key] = _with_defaults(merged[key], default)
    return merged


def with_fields(
    saved: dict[str, Any], config: TrainConfig, names: Iterable[str], where: Path
) -> tuple[TrainConfig, dict[str, tuple[Any, Any]]]:
    """The `saved` config (JSON) with the fields `names` (dotted: `agent.actor_lr`) taken from
    `config`, checked as a loaded config is; and those that changed: name -> (saved, new), as JSON."""
    wanted, merged, changes = to_dict(config), copy.deepcopy(saved), {}
    for name in sorted(names):
        old, new = _json_field(saved, name), _json_field(wanted, name)
        if old != new:
            changes[name] = (old, new)
            *parents, leaf = name.split(".")
            node = merged
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = new
    try:
        return from_dict(TrainConfig, merged), changes
    except ValueError as error:
        raise ValueError(f"{where}: {error} (with --resume, a flag given again replaces it)") from error


def field_names(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of every field of a config's JSON (nested configs' fields, not the configs)."""
    names = []
    for key, value in data.items():
        names += field_names(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]
    return names


def _json_field(data: dict[str, Any], name: str) -> Any:
    for part in name.split("."):
        data = data[part] if isinstance(data, dict) else None
    return data


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _resumed(config: TrainConfig, out: Path) -> TrainConfig:
    """The saved config with what `config` changes (see open_run)."""
    names = field_names(to_dict(config))
    config, changes = with_fields(saved_config(out), config, names, out / "config.json")
    fixed = [name for name in changes if name in RUN_FIELDS]
    if fixed:
        listed = ", ".join(f"{_flag(n)} (saved {changes[n][0]!r}, given {changes[n][1]!r})" for n in fixed)
        raise ValueError(
            f"--resume cannot change {listed}: they shape the networks, the replay or the demos of the "
            f"run in {out}; leave them out, or start a new --out"
        )
    latest = out / "checkpoints" / "latest"
    if not latest.exists() and read_rows(out / "metrics.jsonl") and not _journaled(out):
        raise no_checkpoint(
            out,
            "the run stopped before its first one; starting it over would log env steps from 0 "
            "again: start it in a new --out, or delete this one",
        )
    done = read_counters(latest)["env_steps"] if latest.exists() else 0
    if "steps" in changes and config.steps < done:  # (actors may overshoot the saved total: fine)
        raise ValueError(f"--steps {config.steps} is below the {done} env steps the run in {out} already has")
    if changes:
        _log.info(
            "--resume: from the command line, over the saved config: %s",
            ", ".join(f"{_flag(n)} {new!r} (saved {old!r})" for n, (old, new) in changes.items()),
        )
    return config


def _journaled(out: Path) -> bool:
    """Whether a learner's journal in <out> holds acked steps (a resume replays them)."""
    return any(path.stat().st_size for path in (out / "replay" / "journal").glob("journal_*.log"))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_threads(threads: int, local_actors: int) -> None:
    """The learner's torch CPU threads (see TrainConfig.threads)."""
    if threads < 0:
        raise ValueError(f"--threads must be >= 0, got {threads}")
    if threads or local_actors:
        torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) - local_actors))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def replay_bytes(
    capacity: int, state_dim: int, action_dim: int, image_shapes: dict, map_shape: tuple | None = None
) -> int:
    """Bytes a ReplayBuffer of this shape allocates (float32 state/action/reward, uint8 frames, flags,
    and fp16 maps per frame when a frozen encoder's are cached)."""
    per_slot = 4 * (state_dim + action_dim + 1) + 3 + 16 + sum(int(np.prod(s)) for s in image_shapes.values())
    if map_shape is not None:
        per_slot += 2 * int(np.prod(map_shape)) * len(image_shapes)
    return capacity * per_slot


def warn_if_replay_outgrows_memory(config: TrainConfig, bytes_per_slot: int) -> None:
    """The buffer's pages are touched as it fills, so a pixel replay sized for 200k steps costs
    nothing until the run gets there, and then more than the machine has (26 GB at two 128x128
    cameras with cached maps). Say so at the start, not with an out-of-memory kill hours in."""
    slots = min(config.buffer_capacity, int(config.steps * 1.1) + 1)  # steps + one slot per episode end
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if slots * bytes_per_slot > 0.8 * physical:
        fits = int(0.8 * physical / bytes_per_slot)
        _log.warning(
            "the replay grows to %d observations (%.1f GB) in %d steps, but this machine has %.1f GB of "
            "memory: the run would be killed near step %d. Pass --buffer-capacity %d or less",
            slots,
            slots * bytes_per_slot / 1e9,
            config.steps,
            physical / 1e9,
            fits,
            fits,
        )


def resolve_replay_device(name: str, learner: torch.device, needed_bytes: int) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if learner.type == "cuda":
        free, _ = torch.cuda.mem_get_info(learner)
        if needed_bytes < free / 2:
            return learner
    return torch.device("cpu")


@dataclass
class Replay:
    """The demo buffer (demos, later interventions), the online buffer, the 50/50 sampler and the
    online buffer's incremental on-disk log (checkpoints point into it)."""

    demo: ReplayBuffer
    online: ReplayBuffer
    sampler: MixedSampler
    log: ReplayLog

    @property
    def nbytes(self) -> int:
        return self.online.nbytes + self.demo.nbytes


class EncoderMaps:
    """A frozen encoder as the replay's FrameMaps: frames go to the encoder's device and their maps
    come back to the replay's (on a GPU learner with a CPU replay, the trunk still runs on the GPU)."""

    def __init__(self, encoder: ObservationEncoder, replay_device: torch.device) -> None:
        self.encoder, self.replay_device = encoder, replay_device
        self.map_shape = encoder.map_shape
        self.device = encoder.state_mean.device

    def __call__(self, frames: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        maps = self.encoder.frame_maps({c: f.to(self.device, non_blocking=True) for c, f in frames.items()})
        return {c: m.to(self.replay_device) for c, m in maps.items()}


def build_replay(
    config: TrainConfig,
    state_dim: int,
    action_dim: int,
    image_shapes: dict[str, tuple[int, ...]],
    demo_dir: Path | None,
    out: Path,
    device: torch.device,
    relabel_demo: Callable[[Episode], Episode] | None = None,
    encoder: ObservationEncoder | None = None,
) -> Replay:
    """The run's replay; with a frozen image `encoder`, every stored frame's maps are cached too."""
    frozen = encoder is not None and encoder.frozen_trunk
    map_shape = encoder.map_shape if frozen else None
    needed = replay_bytes(config.buffer_capacity, state_dim, action_dim, image_shapes, map_shape)
    replay_device = resolve_replay_device(config.replay_device, device, needed)
    if replay_device.type == "cpu":
        warn_if_replay_outgrows_memory(
            config, replay_bytes(1, state_dim, action_dim, image_shapes, map_shape)
        )
    buffer_args = dict(
        state_dim=state_dim,
        action_dim=action_dim,
        image_shapes=image_shapes,
        device=replay_device,
        n_step=config.n_step,
        gamma=config.agent.gamma,
        frame_maps=EncoderMaps(encoder, replay_device) if frozen else None,
        base_action_dim=action_dim if config.residual else 0,
    )
    demo_slots = 2
    if demo_dir is not None:
        demo_slots += sum(e["length"] + 1 for e in read_manifest(demo_dir)["episodes"])
    demo = ReplayBuffer(demo_slots, **buffer_args, seed=config.seed + 1)
    if demo_dir is not None:
        demo.load_demos(demo_dir, relabel_demo)
    online = ReplayBuffer(config.buffer_capacity, **buffer_args, seed=config.seed + 2)
    sampler = MixedSampler(demo, online, config.demo_fraction)
    return Replay(demo, online, sampler, ReplayLog(out / "replay" / "online"))


# -- the loop -----------------------------------------------------------------------------------------
class TrainingLoop:
    def __init__(
        self,
        config: TrainConfig,
        out: Path,
        algorithm: SACAlgorithm,
        replay: Replay,
        source: StepSource,
        evaluate: Evaluate,
        *,
        resume: bool = False,
        progress: bool = True,
        lock: DirectoryLock | None = None,
    ) -> None:
        """`lock`: the run directory's (open_run), released when run() ends or by close()."""
        # A loop built and dropped without run() or close() (e.g. to inspect a run) lets go of the
        # directory when it is collected.
        self._release_lock = weakref.finalize(self, lock.release) if lock is not None else None
        self.config, self.out, self.progress = config, out, progress
        self.algorithm, self.replay, self.source, self.evaluate = algorithm, replay, source, evaluate
        self.ratio = config.critic_actor_ratio or config.utd
        warmup = config.critic_warmup
        self.critic_warmup = (
            warmup if warmup is not None else (RESIDUAL_CRITIC_WARMUP if config.residual else 0)
        )
        self.checkpoints = Checkpoints(out / "checkpoints", config.keep_checkpoints)
        self.updates = 0
        self.start_wall = time.monotonic()
        self._update_clock = (self.start_wall, 0)  # (time, updates) at the last training row
        self._metrics: dict[str, torch.Tensor] = {}  # of the newest learn step (read when logging)
        # (env steps, updates) of the newest checkpoint and eval: a finish's owed updates come after
        # the last env step, and a checkpoint or eval without them is not the run's last.
        self._checkpointed_at: tuple[int, int] | None = None
        self._evaluated_at: tuple[int, int] | None = None
        self._normalizer_checked = False
        self._nonfinite_logged = 0
        resume_at = None
        if resume and self.checkpoints.exists():
            resume_at = self._restore()
        else:
            self.replay.log.clear()  # segments of a run that died before its first checkpoint
            if resume:  # no checkpoint, but open_run found no rows to contradict, or a journal
                self.source.restore(None, None)  # a learner's journal still holds what was acked
                resume_at = self.env_steps
            else:
                self.source.fresh_start()
        self.metrics = MetricsWriter(out, resume_at)

    @property
    def env_steps(self) -> int:
        return self.source.env_steps

    def counters(self) -> dict:
        return {
            "env_steps": self.env_steps,
            "updates": self.updates,
            "wall_s": round(time.monotonic() - self.start_wall, 2),
        }

    def owed_updates(self) -> int:
        """Critic updates the schedule owes: utd per env step from `learning_starts` on."""
        c = self.config
        if self.env_steps < c.learning_starts or len(self.replay.demo) + len(self.replay.online) == 0:
            return 0
        return max(0, c.utd * (self.env_steps - c.learning_starts + 1) - self.updates)

    def _learn_steps_owed(self) -> int:
        """Learn steps that pay what is owed now (each makes `ratio` critic updates)."""
        return -(-self.owed_updates() // self.ratio)

    def run(self, stop: threading.Event | None = None) -> dict:
        """Train until `steps` env steps arrived and the updates they are owed are made, or `stop`."""
        stop = stop or threading.Event()
        self._bar = progress_bar(
            total=self.config.steps,
            initial=self.env_steps,
            unit="step",
            desc="train",
            disable=not self.progress,
        )
        try:
            finished = self._train(stop)
            self._finish(finished, stop)
        except BaseException:
            self.source.stop()  # actors keep their unacked steps and wait for a restart
            self.source.close(finished=False)
            raise
        finally:
            self._bar.update(self.env_steps - self._bar.n)  # the steps the finish stored, too
            self._bar.close()
            self.close()
        evals = self.metrics.evals()
        rates = [r["success_rate"] for r in evals if r["success_rate"] is not None]
        return {
            "out": str(self.out),
            **self.counters(),
            "final_success_rate": evals[-1]["success_rate"] if evals else None,
            "best_success_rate": max(rates, default=None),
            "final_eval_return": evals[-1]["eval_return"] if evals else None,
            **self.source.summary(),
        }

    def close(self) -> None:
        """Let go of the run directory: close the metrics and release the lock (run() does, when it
        ends; a loop built but not run, e.g. to inspect a run, needs this)."""
        self.metrics.close()
        if self._release_lock is not None:
            self._release_lock()

    def _train(self, stop: threading.Event) -> bool:
        """The loop; True when `steps` env steps arrived (training finished), False on `stop`."""
        c = self.config
        self.source.start(self.algorithm.policy, self.updates)
        self._marks = {name: self._next_mark(every) for name, every in self._cadences().items()}
        self._update_clock = (time.monotonic(), self.updates)  # after a resume: from here
        while not stop.is_set():
            if self.env_steps < c.steps:
                self.source.collect(limit=c.steps, wait=self.owed_updates() == 0)
            # Against what the bar shows, not `before`: the server thread stores steps meanwhile.
            self._bar.update(self.env_steps - self._bar.n)
            if self.env_steps >= c.steps:
                return True  # _finish tells the source first, then makes the updates still owed
            arrived = self.env_steps
            for _ in range(self._learn_steps_owed()):
                if stop.is_set() or self.env_steps >= c.steps:  # a signal, or the last steps arrived
                    break
                if self._mark_reached_since(arrived):  # actors that outrun the learner: rows, evals
                    break  # and checkpoints stay on their marks, the updates owed come after them
                self._metrics = self.learn_step()
                self.source.after_update(self.algorithm.policy, self.updates)
            if self.env_steps >= c.steps:  # the last steps arrived while learning: the rows, eval
                return True  # and checkpoint due now come after the updates they are still owed
            self._run_cadences()
        return False

    def _run_cadences(self) -> None:
        """A training row, an eval, a checkpoint: each when its mark of env steps is reached."""
        c, marks = self.config, self._marks
        if self.env_steps >= marks["log"]:
            marks["log"] = self._next_mark(c.log_every)
            if self._metrics:
                self._log_training(self._metrics)
        if self.env_steps >= marks["eval"]:
            marks["eval"] = self._next_mark(c.eval_every)
            self._evaluate()
        if self.env_steps >= marks["checkpoint"]:
            marks["checkpoint"] = self._next_mark(c.checkpoint_every)
            self.save_checkpoint()

    def _mark_reached_since(self, steps: int) -> bool:
        """Steps that arrived after `steps` (while the learner was updating) reached a cadence's mark."""
        return any(steps < mark <= self.env_steps for mark in self._marks.values())

    def _counts(self) -> tuple[int, int]:
        return self.env_steps, self.updates

    def _finish(self, finished: bool, stop: threading.Event) -> None:
        """Finished: tell the source (actors stop and deliver their last steps), make the updates
        still owed, then the due rows and a final eval (a stop meanwhile skips them: a --resume makes
        the rest). Stopped: stop the source at once. Either way: checkpoint and a final row with the
        final counts."""
        if finished:
            self.source.finish()
            if self._pay_owed_updates(stop):
                self._run_cadences()
                if self._evaluated_at != self._counts():
                    self._evaluate()
        else:
            self.source.stop()
            if self.env_steps == 0 and self._checkpointed_at is None:
                # Stopped before its first step (say while recording its demos): no checkpoint and
                # no row, so a --resume sets the run up again from scratch, demos topped up.
                self.source.close(finished)
                return
        if self._checkpointed_at != self._counts():
            self.save_checkpoint()
        self.metrics.write({**self.counters(), **self.source.row_metrics(self._elapsed()), "final": True})
        self.source.close(finished)

    def _pay_owed_updates(self, stop: threading.Event) -> bool:
        """The updates the last steps are still owed; False if `stop` came first. Actors that outran
        the learner (pixels on a CPU) can leave thousands, minutes of work: a bar shows them."""
        owed = self.owed_updates()
        shown = self.progress and owed >= OWED_UPDATES_BAR
        bar = progress_bar(total=owed, unit="update", desc="updates owed", disable=not shown)
        while self.owed_updates() and not stop.is_set():
            self._metrics = self.learn_step()
            bar.update(min(self.ratio, bar.total - bar.n))
        bar.close()
        if self.owed_updates():
            _log.warning(
                "stopped with %d updates still owed to the last env steps: --resume makes them",
                self.owed_updates(),
            )
            return False
        return True

    def _cadences(self) -> dict[str, int]:
        c = self.config
        return {"log": c.log_every, "eval": c.eval_every, "checkpoint": c.checkpoint_every}

    def _next_mark(self, every: int) -> int:
        return (self.env_steps // every + 1) * every

    def _elapsed(self) -> float:
        return max(time.monotonic() - self._update_clock[0], 1e-9)

    # -- learning ---------------------------------------------------------------------------------
    def learn_step(self) -> dict[str, torch.Tensor]:
        """`critic_actor_ratio` critic updates and one actor/temperature update on one sampled batch
        (no host sync)."""
        c = self.config
        if not self._normalizer_checked:  # once per process: reading the flag is a host sync
            self._normalizer_checked = True
            if c.agent.normalize_state and not self.algorithm.state_normalizer_fitted():
                source = self.replay.demo if len(self.replay.demo) else self.replay.online
                self.algorithm.fit_state_normalizer(source.stored_states())
        batch = self.replay.sampler.sample(c.batch_size * self.ratio).to(self.algorithm.device)
        self.updates += self.ratio
        # Critic-only updates first (ResFiT's critic warm-up): the actor starts on critics that have
        # learned the value of what is being done (under a residual: the base's).
        return self.algorithm.update(batch, self.ratio, train_actor=self.updates > self.critic_warmup)

    def _log_training(self, metrics: dict[str, torch.Tensor]) -> None:
        values = {name: float(value) for name, value in metrics.items()}  # the one host sync per row
        if values["nonfinite_streak"] >= self.config.max_nonfinite_updates:
            self.save_checkpoint()
            raise TrainingError(
                f"{int(values['nonfinite_streak'])} consecutive updates had NaN/inf losses (all skipped, "
                f"weights untouched); stopping. Last good weights: {self.checkpoints.latest}"
            )
        nonfinite_total = int(self.algorithm.nonfinite_total)
        if nonfinite_total > self._nonfinite_logged:
            _log.warning(
                "%d update(s) skipped for NaN/inf losses or gradients since the last row (%d in total)",
                nonfinite_total - self._nonfinite_logged,
                nonfinite_total,
            )
            self._nonfinite_logged = nonfinite_total
        elapsed = self._elapsed()
        row = {
            **self.counters(),
            **values,
            "updates_per_s": (self.updates - self._update_clock[1]) / elapsed,
            "nonfinite_total": nonfinite_total,
            "rejected_transitions": self.replay.online.rejected,
            "replay_mb": round(self.replay.nbytes / 2**20, 1),
            **self.source.row_metrics(elapsed),
        }
        self._update_clock = (time.monotonic(), self.updates)
        self.metrics.write(row)
        self._bar.set_postfix(updates_per_s=f"{row['updates_per_s']:.0f}", actors=row.get("live_actors"))

    def _evaluate(self) -> None:
        # A copy: the in-process actor's policy may be mid-episode, and a stateful base (a chunked BC
        # policy under a residual) must keep its acting state through the evaluation episodes.
        row = {**self.counters(), **self.evaluate(copy.deepcopy(self.algorithm.policy))}
        self._evaluated_at = self._counts()
        self.metrics.write(row)
        self.metrics.plot()
        self._bar.set_postfix(success=row["success_rate"], eval_return=f"{row['eval_return']:.1f}")

    # -- checkpoints ------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """The replay log gets the new slots (a durable segment), then the small state is written;
        the source's state is taken together with the replay's so the two agree."""
        with self.source.consistent():
            log_end = self.replay.log.append(self.replay.online)
            replay_state = {"log_end": log_end, "meta": self.replay.online.meta_state_dict()}
            source_state, source_counters = self.source.checkpoint_state()
        algorithm = self.algorithm
        state = {
            "algorithm": algorithm.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in algorithm.optimizers.items()},
            "generators": {name: g.get_state() for name, g in algorithm.generators().items()},
            "nonfinite": [algorithm.nonfinite_streak, algorithm.nonfinite_total],
            "online_replay": replay_state,
            # Demos are reloaded from their directory; only their sampler state must carry over.
            "demo_replay_meta": self.replay.demo.meta_state_dict(),
            "source": source_state,
            "source_kind": self.source.kind,
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
            },
        }
        counters = {
            **self.counters(),
            "replay_log_end": log_end,
            **source_counters,
        }
        task = self.config.env or self.config.task
        info = {"task": task, "run": str(self.out.resolve()), **self.counters()}
        path, oldest = self.checkpoints.save(
            self.env_steps, state, counters, lambda directory: save_models(directory, algorithm, info)
        )
        # Drop log data that not even the oldest kept checkpoint needs.
        self.replay.log.prune(self.replay.online.capacity, keep_from=oldest["replay_log_end"])
        self.source.prune(oldest)
        self._checkpointed_at = self._counts()
        return path

    def _restore(self) -> int:
        """Load the newest checkpoint; returns the env steps it was taken at."""
        state, counters = self.checkpoints.load_latest(self.algorithm.device)
        kind = state.get("source_kind", self.source.kind)
        if kind != self.source.kind:  # their states differ: a learner's journal would go unread
            raise ValueError(
                f"--resume: the run in {self.out} was fed by {kind}; resume it the same way, not with "
                f"{self.source.kind}"
            )
        algorithm = self.algorithm
        algorithm.load_state_dict(state["algorithm"])
        for name, optimizer in algorithm.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        for name, generator in algorithm.generators().items():
            generator.set_state(state["generators"][name].cpu())
        algorithm.nonfinite_streak, algorithm.nonfinite_total = state["nonfinite"]
        replay = state["online_replay"]
        self.replay.log.restore(self.replay.online, replay["log_end"], replay["meta"])
        self.replay.demo.load_meta_state_dict(state["demo_replay_meta"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        self.updates = counters["updates"]
        self.start_wall -= counters["wall_s"]
        self.source.restore(state["source"], counters)
        self._checkpointed_at = (counters["env_steps"], counters["updates"])
        return counters["env_steps"]
