"""Typed configs of the benchmarks, as plain dataclasses (no torch import) so `realrl bench ...
--help` is instant; the learner benchmarks' shape flags are shared with benchmarks/lerobot_sac.py,
so a comparison is the same command line twice."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from learner.configs import IMAGE_SIZE


@dataclass(frozen=True)
class BenchSimConfig:
    task: str = "PickCube"
    """Task id or short name."""
    steps: int = field(default=1000, metadata={"min": 1})
    """Env steps per timed run."""
    repeats: int = field(default=5, metadata={"min": 1})
    """Timed runs; the median is reported."""
    image_size: int = field(default=128, metadata=IMAGE_SIZE)
    """Square camera frame size (pixels mode)."""


@dataclass(frozen=True)
class LearnerShapes:
    """The shapes both learner benchmarks (ours and LeRobot's) take."""

    obs: Literal["state", "pixels"] = "state"
    """Observation mode."""
    encoder: Literal["auto", "conv", "resnet18", "pretrained"] = "auto"
    """Image encoder (pixels): conv (trained by the critic), resnet18 (frozen), pretrained (realrl's
    frozen frame trunk, cached per frame; random weights, the same cost; realrl only) or auto, what
    `realrl train` ships: conv on a GPU, pretrained on a CPU."""
    critics: int = field(default=10, metadata={"min": 1})
    """Critic ensemble size."""
    batch: int = field(default=256, metadata={"min": 1})
    """Transitions per update."""
    image_size: int = field(default=128, metadata=IMAGE_SIZE)
    """Square camera frame size (pixels)."""
    cameras: int = field(default=2, metadata={"min": 1})
    """Camera frames per step (pixels)."""
    seconds: float = field(default=10.0, metadata={"gt": 0})
    """Measuring time."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""


@dataclass(frozen=True)
class BenchLearnerConfig(LearnerShapes):
    task: str = "PickCube"
    """Task whose state/action shapes to use."""
    state_dim: int | None = field(default=None, metadata={"min": 1})
    """Override the task's state dimension."""
    action_dim: int | None = field(default=None, metadata={"min": 1})
    """Override the task's action dimension."""
    critic_impl: Literal["auto", "vectorized", "loop"] = "auto"
    """Critic ensemble kind."""
    utd: int = field(default=1, metadata={"min": 1})
    """Critic updates per learn step (one actor update each), as `realrl train --utd`: updates_per_s
    counts critic updates, env_steps_per_s the env steps a learner at this UTD keeps up with."""


@dataclass(frozen=True)
class BenchTransportConfig:
    senders: int = field(default=2, metadata={"min": 1})
    """Sender processes for the ingest run."""
    steps: int = field(default=3000, metadata={"min": 1})
    """Step records per sender per run."""
    repeats: int = field(default=3, metadata={"min": 1})
    """Ingest runs; the median is reported."""
    actors: int = field(default=4, metadata={"min": 1})
    """Actor processes receiving weights."""
    weights_mb: float = field(default=10.0, metadata={"gt": 0})
    """Policy size in MB."""
    pushes: int = field(default=40, metadata={"min": 1})
    """Weight pushes (0.25 s apart)."""
    send_steps: int = field(default=1000, metadata={"min": 1})
    """Steps timed at 100 Hz."""
    image_size: int = field(default=128, metadata=IMAGE_SIZE)
    """Square camera frames, 2 cameras."""


@dataclass(frozen=True)
class BenchLeRobotConfig(LearnerShapes):
    state_dim: int = field(default=14, metadata={"min": 1})
    """State dimension."""
    action_dim: int = field(default=4, metadata={"min": 1})
    """Action dimension."""
    compile: bool = True
    """LeRobot's use_torch_compile (on by default in its SACConfig)."""


def shape_kwargs(config: LearnerShapes) -> dict:
    """A config's shape fields as keyword arguments of both learner benchmarks' run()."""
    return {f.name: getattr(config, f.name) for f in fields(LearnerShapes)}


@dataclass(frozen=True)
class BenchSB3Config:
    env: str = "Walker2d-v5"
    """A gymnasium env id."""
    steps: int = field(default=50_000, metadata={"min": 1})
    """Env steps per seed, a multiple of eval_every."""
    eval_every: int = field(default=5_000, metadata={"min": 1})
    """Env steps between evals."""
    eval_episodes: int = field(default=10, metadata={"min": 1})
    """Deterministic episodes per eval point."""
    seeds: tuple[int, ...] = (0, 1)
    """Seeds, run one after another."""
    learning_starts: int = field(default=5_000, metadata={"min": 0})
    """Uniform steps before learning (the control preset's and CleanRL's; SB3's default is 100)."""
    threads: int = field(default=1, metadata={"min": 1})
    """Torch threads."""


@dataclass(frozen=True)
class BenchLearningConfig:
    suite: Literal["control", "robot"] = "control"
    """control: gymnasium's MuJoCo tasks against published SAC returns at the same env steps;
    robot: PickCube and PegInsert (state, 20 demos; at UTD 10 for 20k, at UTD 1 for 50k): success at
    5k/10k/20k/50k, when it first reaches 90% and whether it holds >= 80% after."""
    seeds: int | None = field(default=None, metadata={"min": 1})
    """Seeds per task; none: the suite's (2 on InvertedPendulum, Hopper, Walker2d; 1 elsewhere)."""
    tasks: tuple[str, ...] = ()
    """Only these tasks of the suite (e.g. Hopper-v5 PickCube); empty: all."""
    out: str = field(default="runs/bench-learning", metadata={"path": "output_dir"})
    """Runs go to <out>/<suite>/<task>/seed<N>; finished runs are read back, stopped ones resumed."""
    jobs: int = field(default=1, metadata={"min": 1})
    """Runs trained at once (each gets cores / jobs torch threads)."""


@dataclass(frozen=True)
class BenchActorConfig:
    task: str = "PickCube"
    """Task id or short name."""
    obs: Literal["state", "pixels"] = "pixels"
    """Observation mode."""
    encoder: str = "pretrained"
    """conv, resnet18, pretrained (a random-weight frame trunk: the cost of any pretrained one) or
    pretrained:MODEL."""
    image_size: int = field(default=128, metadata=IMAGE_SIZE)
    """Square camera frame size (pixels)."""
    steps: int = field(default=1000, metadata={"min": 10})
    """Control steps timed (after --warmup)."""
    warmup: int = field(default=50, metadata={"min": 0})
    """Control steps run first and not timed."""
    threads: int = field(default=1, metadata={"min": 1})
    """Torch CPU threads, as `realrl actor --threads` (the robot PC has other work)."""
    policy: str | None = field(default=None, metadata={"path": "existing_file"})
    """A policy MODEL file to time instead of a fresh SAC policy (its spec sets --obs and the frame
    size; it acts deterministically, as validate and a deployment run it)."""
    sample_steps: int | None = field(default=None, metadata={"min": 1})
    """(--policy, shortcut) Euler steps per action."""
    best_of: int = field(default=1, metadata={"min": 1})
    """(--policy) Candidates per step ranked by --critic (validate --best-of): its cost per action."""
    critic: str | None = field(default=None, metadata={"path": "existing_path"})
    """(--best-of) A critic.pt or a run directory (its latest checkpoint's)."""

    def check(self) -> None:
        if self.policy is None and (self.sample_steps or self.best_of > 1 or self.critic):
            raise ValueError("--sample-steps, --best-of and --critic time a --policy MODEL: give one")
        if self.best_of > 1 and self.critic is None:
            raise ValueError("--best-of needs --critic RUN_DIR|critic.pt")


@dataclass(frozen=True)
class BenchEncoderConfig:
    model: str = field(metadata={"path": "existing_file"})
    """Encoder model file (from `realrl encoder pretrain`)."""
    task: str = "PickCube"
    """Task whose twin renders the probe's frames (its cameras and frame size must be the model's)."""
    episodes: int = field(default=30, metadata={"min": 3})
    """Scripted-expert episodes rolled out; two thirds fit the probes, one third scores them."""
    noise: float = field(default=0.3, metadata={"min": 0})
    """Std of the expert's action noise (varied poses)."""
    seed: int = 50_000
    """Seed of the first episode (away from the demos' seeds)."""


@dataclass(frozen=True)
class BenchResidualConfig:
    task: str = "PegInsert"
    """Sim twin task (state observations)."""
    demos: int = field(default=20, metadata={"min": 1})
    """Scripted demos recorded once: the BC base's training data and both runs' offline data."""
    demo_noise: float = field(default=0.0, metadata={"min": 0.0})
    """Std of Gaussian action noise in the demos (sub-optimal demos make a weaker base)."""
    base_policy: Literal["gaussian", "chunk", "shortcut"] = "shortcut"
    """The BC base's type (`realrl bc train --policy`)."""
    base_steps: int = field(default=3000, metadata={"min": 1})
    """BC gradient steps."""
    base_sample_steps: int = field(default=1, metadata={"min": 1})
    """(shortcut) Euler steps per action: 1 makes PegInsert's base weak (measured 0.66)."""
    validate_episodes: int = field(default=50, metadata={"min": 1})
    """Episodes of `realrl validate` that measure the base."""
    steps: int = field(default=25_000, metadata={"min": 1})
    """Env steps of every run, residual and RLPD alike (the same budget)."""
    seeds: int = field(default=2, metadata={"min": 1})
    """Seeds per method (seed k of each method runs with --seed k)."""
    residual_scale: float = field(default=0.2, metadata={"gt": 0.0, "max": 1.0})
    """The residual's largest correction per action dim (PegInsert: 0.2; ResFiT: 0.1 to 0.2)."""
    eval_every: int = field(default=1000, metadata={"min": 1})
    """Env steps between evaluations (the curves' resolution, and so of the first-reach steps)."""
    eval_episodes: int = field(default=20, metadata={"min": 1})
    """Episodes per evaluation."""
    out: str = field(default="runs/bench-residual", metadata={"path": "output_dir"})
    """Demos, base, runs, residual.json and residual.png; what exists is read back, stopped runs resumed."""
    jobs: int = field(default=1, metadata={"min": 1})
    """Runs trained at once (each gets cores / jobs torch threads)."""
