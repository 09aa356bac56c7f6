"""Typed configs of the actor process and its link to the learner, as plain dataclasses (no torch,
no env imports) so `realrl actor --help` is instant."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class TransportConfig:
    learner: str = "tcp://127.0.0.1:5555"
    """The learner's endpoint, tcp://HOST:PORT."""
    curve_secret: str | None = None
    """This actor's NAME.key_secret (from `realrl keys generate`); needs --learner-key."""
    learner_key: str | None = None
    """The learner's public NAME.key: with it all traffic is encrypted."""
    heartbeat_s: float = 1.0
    """Seconds between heartbeats to the learner."""
    learner_timeout_s: float = 5.0
    """The learner counts as gone after this long without a message; the actor says hello again."""
    spool_bytes: int = 2 * 2**30
    """Disk the spool of unacked records may use; beyond it new records are not kept."""


@dataclass(frozen=True)
class ActorConfig:
    task: str = "PickCube"
    """Task id (realrl/PickCube-v0) or short name (PickCube); must match the learner's."""
    obs: Literal["state", "pixels"] = "state"
    """Observation mode: privileged state, or proprioception + two camera frames."""
    image_size: int = 128
    """Square camera frame size (pixels mode)."""
    learner: str = "tcp://127.0.0.1:5555"
    """The learner's endpoint, tcp://HOST:PORT."""
    robot: str = "sim"
    """sim: the task's MuJoCo twin. (A real arm through `realrl robot-server` comes with that verb.)"""
    actor_id: str | None = None
    """Name of this actor in the learner's metrics; none means the host name."""
    spool: str | None = None
    """Directory of unacked records; none means ~/.cache/realrl/spool/<actor id>."""
    seed: int = 0
    """Seed of the env resets and the policy's sampling."""
    control_hz: float = 0.0
    """Steps per second, paced on the control loop (the real robot's rate is 10); 0 runs the sim
    twin as fast as it steps."""
    image_codec: Literal["raw", "jpeg", "png"] = "raw"
    """How camera frames travel: raw bytes, or JPEG/PNG (less bandwidth, more CPU)."""
    max_steps: int = 0
    """Stop after this many steps (0: run until stopped or the learner finishes)."""
    wait_acks_s: float = 10.0
    """On stop: how long to wait for the learner to ack the last records."""
    threads: int = 1
    """Torch CPU threads for the policy (the robot PC has other work)."""
    curve_secret: str | None = None
    """This actor's NAME.key_secret (from `realrl keys generate`): encrypt; needs --learner-key."""
    learner_key: str | None = None
    """The learner's public NAME.key."""
    heartbeat_s: float = 1.0
    """Seconds between heartbeats to the learner."""
    learner_timeout_s: float = 5.0
    """The learner counts as gone after this long without a message; the actor keeps acting,
    spools, and says hello until a learner answers."""
    spool_bytes: int = 2 * 2**30
    """Disk the spool may use; beyond it new records are not kept for resending."""

    def transport(self) -> TransportConfig:
        return TransportConfig(
            learner=self.learner,
            curve_secret=self.curve_secret,
            learner_key=self.learner_key,
            heartbeat_s=self.heartbeat_s,
            learner_timeout_s=self.learner_timeout_s,
            spool_bytes=self.spool_bytes,
        )


@dataclass(frozen=True)
class DemoRecordConfig:
    task: str
    """Task id (realrl/PickCube-v0) or short name (PickCube)."""
    episodes: int
    """Episodes to record."""
    out: str
    """Demo directory (created; appended to if it holds the task)."""
    source: Literal["scripted"] = "scripted"
    """Who acts: 'scripted' = the twin's privileged-state expert (teleop arrives with interventions)."""
    seed: int = 0
    """Seed of the first episode; episode k uses seed + k."""
    noise: float = 0.0
    """Std of Gaussian action noise (sub-optimal demos)."""
    obs: Literal["state", "pixels"] = "pixels"
    """Observation mode stored in the files (pixels keeps uint8 camera frames)."""
    image_size: int = 128
    """Square camera frame size in pixels."""
    randomize: bool = False
    """Full domain randomisation (colours, lighting, friction, mass, camera jitter)."""
    successes_only: bool = False
    """Keep only successful episodes."""
    contact_sheet: str | None = None
    """Also write a contact sheet PNG of camera frames here."""

    def check(self) -> None:
        if self.episodes < 1:
            raise ValueError("--episodes must be >= 1")
        if self.noise < 0:
            raise ValueError("--noise must be >= 0")
        if self.contact_sheet and self.obs != "pixels":
            raise ValueError("--contact-sheet needs camera frames: use --obs pixels")


@dataclass(frozen=True)
class DemoInfoConfig:
    directory: str = field(metadata={"positional": True})
    """Demo directory."""
    verify: bool = False
    """Also load every file and check its checksum."""


@dataclass(frozen=True)
class DemoSheetConfig:
    directory: str = field(metadata={"positional": True})
    """Pixel demo directory."""
    out: str
    """PNG to write."""
    episodes: int = 4
    """Rows (episodes) on the sheet."""
