"""Typed configs of the benchmarks, as plain dataclasses (no torch import) so `realrl bench ...
--help` is instant; the learner benchmarks' shape flags are shared with benchmarks/lerobot_sac.py,
so a comparison is the same command line twice."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal


@dataclass(frozen=True)
class BenchSimConfig:
    task: str = "PickCube"
    """Task id or short name."""
    steps: int = 1000
    """Env steps per timed run."""
    repeats: int = 5
    """Timed runs; the median is reported."""
    image_size: int = 128
    """Square camera frame size (pixels mode)."""


@dataclass(frozen=True)
class LearnerShapes:
    """The shapes both learner benchmarks (ours and LeRobot's) take."""

    obs: Literal["state", "pixels"] = "state"
    """Observation mode."""
    encoder: Literal["conv", "resnet18"] = "conv"
    """Image encoder (pixels)."""
    critics: int = 10
    """Critic ensemble size."""
    batch: int = 256
    """Transitions per update."""
    image_size: int = 128
    """Square camera frame size (pixels)."""
    cameras: int = 2
    """Camera frames per step (pixels)."""
    seconds: float = 10.0
    """Measuring time."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""


@dataclass(frozen=True)
class BenchLearnerConfig(LearnerShapes):
    task: str = "PickCube"
    """Task whose state/action shapes to use."""
    state_dim: int | None = None
    """Override the task's state dimension."""
    action_dim: int | None = None
    """Override the task's action dimension."""
    critic_impl: Literal["auto", "vectorized", "loop"] = "auto"
    """Critic ensemble kind."""


@dataclass(frozen=True)
class BenchTransportConfig:
    senders: int = 2
    """Sender processes for the ingest run."""
    steps: int = 3000
    """Step records per sender per run."""
    repeats: int = 3
    """Ingest runs; the median is reported."""
    actors: int = 4
    """Actor processes receiving weights."""
    weights_mb: float = 10.0
    """Policy size in MB."""
    pushes: int = 40
    """Weight pushes (0.25 s apart)."""
    send_steps: int = 1000
    """Steps timed at 100 Hz."""
    image_size: int = 128
    """Square camera frames, 2 cameras."""


@dataclass(frozen=True)
class BenchLeRobotConfig(LearnerShapes):
    state_dim: int = 14
    """State dimension."""
    action_dim: int = 4
    """Action dimension."""
    compile: bool = True
    """LeRobot's use_torch_compile (on by default in its SACConfig)."""


def shape_kwargs(config: LearnerShapes) -> dict:
    """A config's shape fields as keyword arguments of both learner benchmarks' run()."""
    return {f.name: getattr(config, f.name) for f in fields(LearnerShapes)}
