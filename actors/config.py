"""Typed configs of the actor process and its link to the learner, as plain dataclasses (no torch,
no env imports) so `realrl actor --help` is instant."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

IMAGE_SIZE = {"min": 16, "max": 480}
"""Valid square frame sizes, learner.configs.IMAGE_SIZE's (actors may not import the learner)."""

_CONNECT = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]*]+):(\d{1,5})|(ipc|inproc)://.+")


@dataclass(frozen=True)
class TransportConfig:
    learner: str = "tcp://127.0.0.1:5555"
    """The learner's endpoint, tcp://HOST:PORT."""
    curve_secret: str | None = field(default=None, metadata={"path": "existing_file"})
    """This actor's NAME.key_secret (from `realrl keys generate`); needs --learner-key."""
    learner_key: str | None = field(default=None, metadata={"path": "existing_file"})
    """The learner's public NAME.key: with it all traffic is encrypted."""
    heartbeat_s: float = field(default=1.0, metadata={"gt": 0})
    """Seconds between heartbeats to the learner."""
    learner_timeout_s: float = field(default=5.0, metadata={"gt": 0})
    """The learner counts as gone after this long without a message; the actor says hello again."""
    spool_bytes: int = field(default=2 * 2**30, metadata={"min": 1})
    """Disk the spool of unacked records may use (all sessions together); see --on-spool-full."""
    answer_timeout_s: float = field(default=30.0, metadata={"gt": 0})
    """Warn (then at doubling intervals) when the learner has not answered a hello for this long."""

    def check(self) -> None:
        match = _CONNECT.fullmatch(self.learner)
        if not match or (match[2] is not None and not 1 <= int(match[2]) <= 65535):
            raise ValueError(
                f"--learner must be tcp://HOST:PORT, ipc://PATH or inproc://NAME, got {self.learner!r}"
            )
        if bool(self.curve_secret) != bool(self.learner_key):
            raise ValueError(
                "CURVE needs both --curve-secret (this actor's) and --learner-key (the learner's)"
            )


@dataclass(frozen=True)
class ActorConfig:
    task: str = "PickCube"
    """Task id (realrl/PickCube-v0) or short name (PickCube); must match the learner's."""
    obs: Literal["state", "pixels"] = "state"
    """Observation mode: privileged state, or proprioception + two camera frames."""
    image_size: int = field(default=128, metadata=IMAGE_SIZE)
    """Square camera frame size (pixels mode)."""
    learner: str = "tcp://127.0.0.1:5555"
    """The learner's endpoint, tcp://HOST:PORT."""
    robot: str = "sim"
    """sim: the task's MuJoCo twin. (A real arm through `realrl robot-server` comes with that verb.)"""
    actor_id: str | None = None
    """Name of this actor at the learner (unique among its actors; with CURVE, the name of this
    actor's key file). none: <host>-<N> with the first spool slot N no running actor holds (a
    restarted actor gets its slot back), or <host>-<hash of --spool> when --spool is given."""
    spool: str | None = field(default=None, metadata={"path": "output_dir"})
    """Directory of unacked records, held by one process at a time; none means
    ~/.cache/realrl/spool/<actor id>."""
    seed: int = 0
    """Seed of the env resets and the policy's sampling."""
    control_hz: float = field(default=0.0, metadata={"min": 0})
    """Steps per second, paced on the control loop (the real robot's rate is 10); 0 runs the sim
    twin as fast as it steps."""
    image_codec: Literal["raw", "jpeg", "png"] = "raw"
    """How camera frames travel: raw bytes, or JPEG/PNG (less bandwidth, more CPU)."""
    max_steps: int = field(default=0, metadata={"min": 0})
    """Stop after this many steps (0: run until stopped or the learner finishes)."""
    wait_acks_s: float = field(default=10.0, metadata={"min": 0})
    """On stop: how long to wait for the learner to ack the last records."""
    parent_pid: int = field(default=0, metadata={"min": 0})
    """Stop (as on SIGTERM) once the process with this PID is no longer this one's parent: `realrl
    train --actors N` passes its own, so its actors do not outlive it (0: no such check)."""
    threads: int = field(default=1, metadata={"min": 1})
    """Torch CPU threads for the policy (the robot PC has other work)."""
    encoder_model: str | None = field(default=None, metadata={"path": "existing_file"})
    """This machine's copy of the run's frozen encoder model (a run with --agent.encoder
    pretrained:MODEL, or auto on a CPU learner: <out>/encoder.pt), for when it is not at the path the
    learner names; refused unless its weights hash to the run's encoder. none: the learner's path."""
    base_policy: str | None = field(default=None, metadata={"path": "existing_file"})
    """This machine's copy of a residual run's base MODEL (the base ships once, by hash: pushes carry
    only the residual), for when it is not at the path the learner names; refused unless it hashes
    to the run's base. none: the learner's path."""
    curve_secret: str | None = field(default=None, metadata={"path": "existing_file"})
    """This actor's NAME.key_secret (from `realrl keys generate`): encrypt; needs --learner-key."""
    learner_key: str | None = field(default=None, metadata={"path": "existing_file"})
    """The learner's public NAME.key."""
    heartbeat_s: float = field(default=1.0, metadata={"gt": 0})
    """Seconds between heartbeats to the learner."""
    learner_timeout_s: float = field(default=5.0, metadata={"gt": 0})
    """The learner counts as gone after this long without a message; the actor keeps acting,
    spools, and says hello until a learner answers."""
    spool_bytes: int = field(default=2 * 2**30, metadata={"min": 1})
    """Disk the spool of unacked records may use (all sessions together)."""
    on_spool_full: Literal["wait", "drop"] = "wait"
    """When the spool cannot take a step's record (the learner away too long): wait holds the robot
    still until acks free room (nothing lost); drop goes on acting and counts the records it could
    not keep (`steps_dropped`; for sim fleets, where steps are cheap)."""
    answer_timeout_s: float = field(default=30.0, metadata={"gt": 0})
    """Warn (then at doubling intervals) when the learner has not answered a hello for this long."""

    def check(self) -> None:
        self.transport().check()

    def transport(self) -> TransportConfig:
        return TransportConfig(
            learner=self.learner,
            curve_secret=self.curve_secret,
            learner_key=self.learner_key,
            heartbeat_s=self.heartbeat_s,
            learner_timeout_s=self.learner_timeout_s,
            spool_bytes=self.spool_bytes,
            answer_timeout_s=self.answer_timeout_s,
        )


@dataclass(frozen=True)
class DemoRecordConfig:
    task: str
    """Task id (realrl/PickCube-v0) or short name (PickCube)."""
    episodes: int = field(metadata={"min": 1})
    """Episodes to record."""
    out: str = field(metadata={"path": "output_dir"})
    """Demo directory (created; appended to if it holds the task)."""
    source: Literal["scripted"] = "scripted"
    """Who acts: 'scripted' = the twin's privileged-state expert (teleop arrives with interventions)."""
    seed: int = 0
    """Seed of the first episode; episode k uses seed + k."""
    noise: float = field(default=0.0, metadata={"min": 0})
    """Std of Gaussian action noise (sub-optimal demos)."""
    obs: Literal["state", "pixels"] = "pixels"
    """Observation mode stored in the files (pixels keeps uint8 camera frames)."""
    image_size: int = field(default=128, metadata=IMAGE_SIZE)
    """Square camera frame size in pixels."""
    randomize: bool = False
    """Full domain randomisation (colours, lighting, friction, mass, camera jitter)."""
    successes_only: bool = False
    """Keep only successful episodes."""
    contact_sheet: str | None = field(default=None, metadata={"path": "output_file"})
    """Also write a contact sheet PNG of camera frames here."""

    def check(self) -> None:
        if self.contact_sheet and self.obs != "pixels":
            raise ValueError("--contact-sheet needs camera frames: use --obs pixels")


@dataclass(frozen=True)
class DemoInfoConfig:
    directory: str = field(metadata={"positional": True})
    """Demo directory."""
    verify: bool = False
    """Also load every file: its checksum, its shapes against the manifest's obs spec, and whether
    the manifest's task observes and acts what the files hold."""


@dataclass(frozen=True)
class DemoSheetConfig:
    directory: str = field(metadata={"positional": True})
    """Pixel demo directory."""
    out: str = field(metadata={"path": "output_file"})
    """PNG to write."""
    episodes: int = field(default=4, metadata={"min": 1})
    """Rows (episodes) on the sheet."""


@dataclass(frozen=True)
class ValidateConfig:
    task: str = "PickCube"
    """Task id (realrl/PickCube-v0) or short name (PickCube): its sim twin runs the episodes."""
    policy: str | None = None
    """A policy MODEL file (`realrl bc train`, or a checkpoint's policy.pt), `random` or `scripted`
    (the twin's expert); or give --checkpoint instead."""
    checkpoint: str | None = field(default=None, metadata={"path": "existing_dir"})
    """A run directory of `realrl train`/`learner`: its latest checkpoint's policy."""
    base_policy: str | None = field(default=None, metadata={"path": "existing_file"})
    """A residual policy's base MODEL on this machine (default: the path its run saved); refused
    unless it is the base the residual was trained over (same content hash)."""
    episodes: int = field(default=20, metadata={"min": 1})
    """Episodes to roll out."""
    seed: int = 1_000_000
    """Episode k uses seed + k; the default is the in-training evaluation's, so a run's last
    checkpoint validates on the episodes its last eval saw."""
    randomize: bool = False
    """Domain randomisation of the twin (lighting, colours, friction, object mass, camera pose)."""
    min_success: float | None = field(default=None, metadata={"min": 0.0, "max": 1.0})
    """Exit non-zero when the success rate is below this."""
    max_violation_episodes: int | None = field(default=None, metadata={"min": 0})
    """Exit non-zero when more episodes than this had a step with safety_margin < 0."""
    sample_steps: int | None = field(default=None, metadata={"min": 1})
    """A shortcut policy's Euler steps per action (1, 2, 4, 8; default: the model's)."""
    best_of: int = field(default=1, metadata={"min": 1})
    """Draw N candidate actions per step and execute the one the critic scores highest (SORL's
    best-of-N; a sampling policy: sac, residual, bc-gaussian, bc-shortcut). 1: the policy alone."""
    critic: str | None = field(default=None, metadata={"path": "existing_path"})
    """The critic of --best-of: a critic.pt, or a run directory (its latest checkpoint's); default:
    the --checkpoint run's. It must read the task's observations and score its actions."""
    report: str | None = field(default=None, metadata={"path": "output_file"})
    """Report PNG (success and return per episode, camera frames of failed episodes); default:
    validate.png beside the model, in the run directory, or here."""
    failure_frames: int = field(default=4, metadata={"min": 0})
    """Failed episodes whose last camera frame the report shows."""

    def check(self) -> None:
        if (self.policy is None) == (self.checkpoint is None):
            raise ValueError("give one of --policy MODEL|random|scripted and --checkpoint RUN_DIR")
        if self.critic is not None and self.best_of == 1:
            raise ValueError("--critic ranks the candidates of --best-of N: give N > 1 too")
        if self.best_of > 1 and self.critic is None and self.checkpoint is None:
            raise ValueError(
                "--best-of needs a critic: --critic RUN_DIR|critic.pt (a run on this task), or "
                "--checkpoint RUN_DIR, whose critic it then uses"
            )
