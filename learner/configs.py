"""Typed configs of the learner, as plain dataclasses (no torch import) so `realrl --help` can turn
every field into a --flag instantly. Saved as config.json in each run directory."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from policies.configs import BCPolicyConfig

IMAGE_SIZE = {"min": 16, "max": 480}
"""Valid square frame sizes: the conv encoder's four 3x3 layers need >= 15 px, the sim twin's
offscreen framebuffer is 640x480 (actors.config keeps the same numbers; a test compares them)."""

_BIND = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):(\*|\d{1,5})|(ipc|inproc)://.+")


@dataclass(frozen=True)
class SACConfig:
    hidden: tuple[int, ...] = field(default=(256, 256), metadata={"min": 1})
    """Hidden layer widths of the actor and of every critic."""
    critics: int = field(default=10, metadata={"min": 1})
    """Critic ensemble size E."""
    critic_subsample: int = field(default=2, metadata={"min": 1})
    """M: the target takes the min over a random subset of M critics."""
    critic_impl: Literal["auto", "vectorized", "loop"] = "auto"
    """Ensemble implementation; auto picks the one measured faster on the device."""
    critic_layer_norm: bool = True
    """LayerNorm in every critic hidden layer (RLPD)."""
    gamma: float = field(default=0.99, metadata={"gt": 0, "max": 1})
    """Discount per env step."""
    tau: float = field(default=0.005, metadata={"gt": 0, "max": 1})
    """Polyak rate of the target critic (and target encoder)."""
    actor_lr: float = field(default=3e-4, metadata={"gt": 0})
    """Adam learning rate of the actor."""
    critic_lr: float = field(default=3e-4, metadata={"gt": 0})
    """Adam learning rate of the critics and the encoder."""
    temperature_lr: float = field(default=3e-4, metadata={"gt": 0})
    """Adam learning rate of the entropy temperature."""
    init_temperature: float = field(default=0.01, metadata={"gt": 0})
    """Initial entropy temperature. SERL's 1e-2: with sparse 0/1 rewards, RLPD's 1.0 makes the
    entropy bonus dwarf the task return for thousands of updates (measured on PickCube)."""
    target_entropy: float | None = None
    """Entropy target; none means -target_entropy_per_dim * |A|."""
    target_entropy_per_dim: float = field(default=0.5, metadata={"gt": 0})
    """Entropy target per action dimension when --agent.target-entropy is none: RLPD's -|A|/2 (0.5),
    the SAC paper's -|A| (1.0)."""
    backup_entropy: bool = True
    """Subtract alpha * log pi(a'|s') in the critic target."""
    log_std_min: float = -20.0
    """Lower clip of the actor's log standard deviation."""
    log_std_max: float = 2.0
    """Upper clip of the actor's log standard deviation."""
    encoder: str = "auto"
    """Image encoder (pixels mode): conv (trained by the critic, DrQ shift: the GPU choice),
    resnet18 (frozen ImageNet ResNet-18), pretrained:MODEL (a frozen trunk from `realrl encoder
    pretrain`: the CPU choice) or auto: conv on a GPU; on a CPU, a trunk pretrained first on this
    run's own frames (its demos and as many noisy scripted rollouts) into <out>/encoder.pt. A frozen
    trunk's maps are computed once per frame and cached in the replay (fp16); the update trains
    SERL's head per camera on them (spatial pooling -> 256 -> LayerNorm -> tanh)."""
    encoder_hash: str | None = None
    """Content hash of the pretrained:MODEL trunk: filled in when a run starts, then checked on
    --resume and by every actor (give it to insist on one model)."""
    pretrained_encoder: bool = True
    """Load ImageNet weights for resnet18 (downloaded once to the torch hub cache)."""
    image_pad: int = field(default=4, metadata={"min": 0})
    """DrQ random-shift padding in pixels of a critic-trained encoder (0 disables augmentation)."""
    map_shift: int = field(default=1, metadata={"min": 0})
    """A frozen encoder's augmentation instead of DrQ's: the cached maps of each sampled frame are
    shifted by up to this many cells (replicated border), 1 cell = 8 px at 128 px (0: none)."""
    image_bf16: bool = True
    """bfloat16 autocast for the image encoder where the device has native bf16 (CUDA sm80+, CPUs
    with AVX512-BF16/AMX; 1.8x faster conv trunk measured on such a CPU); critics and actor stay fp32."""
    normalize_state: bool = True
    """Standardise the state vector with the demos' mean/std (or the first online data without
    demos), fitted once before the first update and saved with the weights."""
    bc_weight: float = field(default=0.0, metadata={"min": 0})
    """Weight of a behaviour-cloning term in the actor loss: the squared distance from the actor's
    mean action to each batch row's stored action, on the rows whose action the critics value above
    the policy's (Nair et al. 2018's Q-filter). 0 is RLPD."""
    gripper_toggle_penalty: float = field(default=0.02, metadata={"min": 0})
    """Hybrid agent: subtracted from the gripper critic's reward per open or close command."""
    gripper_epsilon: float = field(default=0.1, metadata={"min": 0, "max": 1})
    """Hybrid agent: chance of a uniformly random gripper choice while exploring."""


@dataclass(frozen=True)
class TrainConfig:
    preset: Literal["auto", "robot", "control"] = "auto"
    """Defaults of a task family (learner.presets), for every field not given as a flag: robot (the
    sim twins and real arms: sparse success rewards, demos; RLPD + SERL) or control (dense-reward
    benchmarks such as gymnasium's MuJoCo suite: the SAC paper's). auto: control with --env, else robot."""
    algorithm: Literal["sac", "hybrid-gripper"] = "sac"
    """What learns (learner.algorithms): RLPD SAC, or HIL-SERL's hybrid agent, whose last action dim
    is a discrete gripper (open/stay/close) with a double-DQN critic. Both take --agent.* flags."""
    residual: bool = False
    """Residual RL (ResFiT): learn a small correction over the frozen --base-policy instead of a policy
    from scratch; executed = clip(base + residual), the critics see the executed action."""
    base_policy: str | None = field(default=None, metadata={"path": "existing_file"})
    """The frozen base policy's MODEL (`realrl bc train`) that --residual corrects."""
    base_policy_hash: str | None = None
    """Content hash of --base-policy: filled in when a run starts, then checked on --resume."""
    residual_scale: float = field(default=0.1, metadata={"gt": 0, "max": 1})
    """Largest residual correction per action dim, in the normalised action space (ResFiT: 0.1, 0.2
    on harder tasks)."""
    critic_warmup: int | None = field(default=None, metadata={"min": 0})
    """Critic updates before the actor's (and the temperature's) first (ResFiT's critic warm-up: the
    actor then starts from critics that know the value of what is done); none means 1000 with
    --residual (a residual explores as the base plus --residual-noise meanwhile), else 0."""
    residual_noise: float = field(default=0.03, metadata={"gt": 0})
    """The residual's initial exploration std in action units (ResFiT's 0.025-0.05): a fresh residual
    explores this close around the base; SAC's temperature adapts it from there."""
    task: str = "PickCube"
    """Task id (realrl/PickCube-v0) or short name (PickCube)."""
    env: str | None = None
    """gymnasium:<ID> trains on a registered gymnasium env instead of --task (Box or Dict observation,
    Box action; no demos, so it explores with --random-steps first)."""
    obs: Literal["state", "pixels"] = "state"
    """Observation mode: privileged state, or proprioception + two camera frames."""
    image_size: int = field(default=128, metadata=IMAGE_SIZE)
    """Square camera frame size (pixels mode)."""
    steps: int = field(default=20_000, metadata={"min": 1})
    """Env steps to train for."""
    seed: int = 0
    """Seed of the env, the networks and the replay sampling."""
    utd: int = field(default=1, metadata={"min": 1})
    """Update-to-data ratio: critic updates per env step (RLPD uses up to 20; each costs a full critic
    step). The throttle: the learner never runs ahead of it, and makes every update it owes."""
    critic_actor_ratio: int | None = field(default=None, metadata={"min": 1})
    """Critic updates per actor + temperature update (SERL 4, HIL-SERL 2); none means --utd (RLPD:
    one actor update per env step)."""
    batch_size: int = field(default=256, metadata={"min": 1})
    """Transitions per critic update (half demos, half online by default)."""
    demo_fraction: float = field(default=0.5, metadata={"min": 0, "max": 1})
    """Share of each batch drawn from the demo buffer (RLPD: 0.5)."""
    demos: str | None = field(default=None, metadata={"path": "existing_dir"})
    """Demo directory; none records `demo_episodes` scripted demos into <out>/demos first."""
    demo_episodes: int = field(default=20, metadata={"min": 1})
    """Scripted demos to record when --demos is not given."""
    random_steps: int | None = field(default=None, metadata={"min": 0})
    """Uniform random actions before the policy acts; none means 0 with demos, else learning_starts."""
    learning_starts: int = field(default=256, metadata={"min": 0})
    """Env steps before the first update."""
    n_step: int = field(default=3, metadata={"min": 1})
    """n-step returns in the replay buffer (3: sparse success rewards reach the start of an episode
    3x sooner; PickCube learned with 3 and not with 1 in 10k steps, measured)."""
    buffer_capacity: int = field(default=200_000, metadata={"min": 2})
    """Online replay capacity in observation slots."""
    eval_every: int = field(default=2_000, metadata={"min": 1})
    """Env steps between evaluations (deterministic policy)."""
    eval_episodes: int = field(default=20, metadata={"min": 1})
    """Episodes per evaluation (20: one episode moves a success rate 5 points, not 10; each eval row
    also carries its 95% interval)."""
    log_every: int = field(default=500, metadata={"min": 1})
    """Env steps between training-metric rows."""
    checkpoint_every: int = field(default=5_000, metadata={"min": 1})
    """Env steps between checkpoints (one is always written at the end)."""
    keep_checkpoints: int = field(default=2, metadata={"min": 1})
    """Newest checkpoint directories kept (older ones and the replay segments only they need go)."""
    max_nonfinite_updates: int = field(default=10, metadata={"min": 1})
    """Stop training after this many consecutive updates with a NaN/inf loss."""
    device: str = "auto"
    """Torch device of the learner: auto picks cuda when available."""
    threads: int = field(default=0, metadata={"min": 0})
    """Torch CPU threads of the learner; 0: every core, less one per local actor process (--actors),
    since a learner whose OpenMP threads share cores with busy actors waits on descheduled threads
    (measured: learning ~10x slower on 2 cores with 2 actors at 40 Hz)."""
    replay_device: str = "auto"
    """Where the replay lives: auto keeps it on the learner's GPU when it needs under half the free
    GPU memory (sampling then never crosses PCIe), else in CPU memory; or cpu / cuda."""
    actors: int = field(default=0, metadata={"min": 0})
    """Actor processes started on this machine, streaming to the learner over loopback ZeroMQ (the
    same code as the two-machine setup); 0 runs the actor loop inside this process (debugging)."""
    actor_hz: float = field(default=10.0, metadata={"min": 0})
    """Control rate of each local actor process (the real robot's 10 Hz); 0 steps as fast as it can."""
    weights_every: int = field(default=50, metadata={"min": 1})
    """Learner updates between weight pushes to the actors."""
    weights_every_s: float = field(default=10.0, metadata={"min": 0})
    """Seconds between weight pushes, whichever comes first."""
    agent: SACConfig = field(default_factory=SACConfig)

    def check(self) -> None:
        encoder = self.agent.encoder
        if encoder not in ("auto", "conv", "resnet18") and not (
            encoder.startswith("pretrained:") and len(encoder) > len("pretrained:")
        ):
            raise ValueError(
                f"--agent.encoder must be auto, conv, resnet18 or pretrained:MODEL, got {encoder!r}"
            )
        if self.agent.log_std_min >= self.agent.log_std_max:
            raise ValueError(
                f"--agent.log-std-min ({self.agent.log_std_min}) must be below --agent.log-std-max "
                f"({self.agent.log_std_max})"
            )
        self._check_residual()

    def _check_residual(self) -> None:
        if self.residual != (self.base_policy is not None):
            raise ValueError("--residual and --base-policy MODEL go together (a residual corrects a base)")
        if self.residual and self.algorithm != "sac":
            raise ValueError(
                f"--residual trains with SAC; --algorithm {self.algorithm} has no residual variant"
            )


@dataclass(frozen=True)
class ServerConfig:
    bind: str = "tcp://127.0.0.1:5555"
    """ZeroMQ endpoint to bind (tcp://*:5555 for every interface; port 0 or * picks a free port)."""
    curve_secret: str | None = field(default=None, metadata={"path": "existing_file"})
    """The learner's NAME.key_secret (from `realrl keys generate`): encrypt all traffic."""
    allow_keys: str | None = field(default=None, metadata={"path": "existing_dir"})
    """Directory of the public NAME.key of every actor allowed in (needed with --curve-secret)."""
    heartbeat_s: float = field(default=1.0, metadata={"gt": 0})
    """Seconds between heartbeats to each actor."""
    actor_timeout_s: float = field(default=10.0, metadata={"gt": 0})
    """An actor silent this long is marked dead and its state freed."""
    batch_messages: int = field(default=512, metadata={"min": 1})
    """Most messages handled per batch (one journal write pass, one round of acks)."""
    fsync_journal: bool = False
    """fsync the journal before acking, so acked steps survive a power cut or OS crash of the
    learner machine too (a SIGKILL of the learner they survive anyway: written is enough for
    that). Costs ingest speed (measured in `realrl bench transport`)."""

    def check(self) -> None:
        match = _BIND.fullmatch(self.bind)
        if not match or (match[2] not in (None, "*") and int(match[2]) > 65535):
            raise ValueError(
                f"--bind must be tcp://HOST:PORT (HOST may be *, PORT 0 or * picks a free port), "
                f"ipc://PATH or inproc://NAME, got {self.bind!r}"
            )
        if bool(self.curve_secret) != bool(self.allow_keys):
            raise ValueError(
                "CURVE needs both --curve-secret (the learner's NAME.key_secret) and --allow-keys DIR "
                "(the public keys of the allowed actors)"
            )
        if self.allow_keys and not any(Path(self.allow_keys).glob("*.key")):
            raise ValueError(f"--allow-keys {self.allow_keys}: no public NAME.key files there")


@dataclass(frozen=True)
class PretrainConfig:
    data: tuple[str, ...]
    """Episode directories of the task's camera frames (`realrl demos record --obs pixels`: demos, and
    noisy rollouts as exploration frames); all with the same cameras and frame size."""
    out: str = field(metadata={"path": "output_file"})
    """Model file to write (load it with --agent.encoder pretrained:MODEL)."""
    steps: int = field(default=2_000, metadata={"min": 0})
    """Adam steps; 0 writes the untrained trunk (the random-weight baseline)."""
    batch_size: int = field(default=32, metadata={"min": 1})
    """Frames per camera per step."""
    lr: float = field(default=3e-3, metadata={"gt": 0})
    """Adam learning rate."""
    channels: int = field(default=32, metadata={"min": 1})
    """Channels of the trunk's maps (= keypoints per camera)."""
    reconstruct: int = field(default=32, metadata={"min": 2})
    """Side of the downsampled frame the keypoints must rebuild."""
    held_out_fraction: float = field(default=0.1, metadata={"gt": 0, "lt": 1})
    """Share of the episodes held out to measure the loss before and after."""
    seed: int = 0
    """Seed of the trunk's initial weights, the held-out split and the batches."""
    threads: int = field(default=0, metadata={"min": 0})
    """Torch CPU threads (0: torch's default)."""

    def check(self) -> None:
        missing = [d for d in self.data if not Path(d).is_dir()]
        if missing:
            raise ValueError(f"--data: no such directory: {', '.join(missing)}")


@dataclass(frozen=True)
class BCTrainConfig:
    demos: str = field(metadata={"path": "existing_dir"})
    """Demo directory (`realrl demos record`), state or pixel demos; its task, cameras and frame size
    become the model's spec."""
    out: str = field(metadata={"path": "output_file"})
    """Model file to write (MODEL: `realrl validate --policy MODEL`, `realrl train --base-policy MODEL`);
    the loss curve goes beside it as MODEL's name with .loss.png."""
    policy: Literal["gaussian", "chunk", "shortcut"] = "gaussian"
    """gaussian: tanh-Gaussian MLP (the baseline); chunk: the next --model.chunk-size actions per
    observation; shortcut: a shortcut flow policy sampling in 1 to --model.max-steps Euler steps."""
    obs: Literal["auto", "state", "pixels"] = "auto"
    """What the policy reads; auto: what the demos hold (state demos carry the object pose; pixel
    demos proprioception and the camera frames)."""
    steps: int = field(default=5_000, metadata={"min": 0})
    """Adam steps."""
    batch_size: int = field(default=256, metadata={"min": 1})
    """Demo steps per Adam step."""
    lr: float = field(default=3e-4, metadata={"gt": 0})
    """Adam learning rate."""
    held_out_fraction: float = field(default=0.1, metadata={"gt": 0, "lt": 1})
    """Share of the demo episodes held out for the validation loss (at least one episode)."""
    eval_every: int = field(default=250, metadata={"min": 1})
    """Steps between two points of the loss curve (train loss averaged over them, validation loss)."""
    seed: int = 0
    """Seed of the weights, the split and the batches."""
    threads: int = field(default=0, metadata={"min": 0})
    """Torch CPU threads (0: torch's default)."""
    model: BCPolicyConfig = BCPolicyConfig()
    """The policy's settings (--model.hidden, --model.encoder, --model.chunk-size, ...)."""
