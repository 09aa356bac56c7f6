"""Typed configs of the policies, as plain dataclasses (no torch import) so they can travel in the
learner's welcome message and `--help` stays instant. An algorithm's config names the policy config
it trains (learner.configs.SACConfig.policy_config)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GaussianPolicyConfig:
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor MLP."""
    log_std_min: float = -20.0
    """Lower clip of the actor's log standard deviation."""
    log_std_max: float = 2.0
    """Upper clip of the actor's log standard deviation."""
    encoder: str = "conv"
    """Image encoder: conv (trained by the critic), resnet18 (frozen ImageNet ResNet-18 + spatial
    pooling) or pretrained:MODEL (a frozen trunk from `realrl encoder pretrain` + spatial pooling)."""
    encoder_hash: str | None = None
    """Content hash of a pretrained:MODEL trunk; when set, a model that hashes otherwise is refused."""
    pretrained_encoder: bool = True
    """Load ImageNet weights for resnet18 (downloaded once to the torch hub cache)."""
    image_bf16: bool = True
    """bfloat16 autocast for the image encoder where the device computes bf16 natively."""


@dataclass(frozen=True)
class HybridGripperPolicyConfig(GaussianPolicyConfig):
    gripper_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the discrete gripper critic that picks the gripper command."""
    gripper_layer_norm: bool = True
    """LayerNorm in the gripper critic's hidden layers."""
    gripper_epsilon: float = 0.1
    """Chance of a uniformly random gripper choice while exploring."""


@dataclass(frozen=True)
class BCPolicyConfig(GaussianPolicyConfig):
    """A behaviour-cloning policy (`realrl bc train --policy gaussian|chunk|shortcut`): the encoder
    fields and `hidden` as the SAC policy's, plus what the chunked and the shortcut policies add."""

    hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden layer widths of the policy MLP (on the encoder's features)."""
    log_std_min: float = -5.0
    """(gaussian) Lower clip of the log standard deviation: a near-deterministic expert would
    otherwise drive it, and the likelihood's gradients, without bound."""
    chunk_size: int = field(default=4, metadata={"min": 1})
    """(chunk) Actions predicted per observation: this step's and the next chunk_size - 1."""
    temporal_ensemble: bool = True
    """(chunk) Predict a chunk every step and execute the weighted mean of every prediction for
    this step (ACT's temporal ensembling); off: execute each chunk open-loop, predicting every
    chunk_size steps."""
    ensemble_decay: float = field(default=0.1, metadata={"min": 0.0})
    """(chunk) Weight exp(decay * age) of a prediction made age steps ago (older ones weigh more, as
    in ACT)."""
    sample_steps: int = field(default=4, metadata={"min": 1})
    """(shortcut) Euler steps per sampled action: 1, 2, 4 or 8 (at most max_steps)."""
    max_steps: int = field(default=8, metadata={"min": 1})
    """(shortcut) The finest step count trained, a power of two: the model learns steps of size
    1/max_steps ... 1, each consistent with two of half its size."""

    def check(self) -> None:
        for name in ("sample_steps", "max_steps"):
            value = getattr(self, name)
            if value & (value - 1):
                raise ValueError(f"{name} must be a power of two (1, 2, 4, 8, ...), got {value}")
        if self.sample_steps > self.max_steps:
            raise ValueError(f"sample_steps {self.sample_steps} is above max_steps {self.max_steps}")


@dataclass(frozen=True)
class ResidualPolicyConfig(GaussianPolicyConfig):
    """A residual correction over a frozen base policy (ResFiT): its own encoder and a tanh-Gaussian
    actor on [features, base action], scaled by `scale` in the normalised action space."""

    scale: float = field(default=0.1, metadata={"gt": 0.0, "max": 1.0})
    """Largest correction per action dim (ResFiT: 0.1, 0.2 on harder tasks)."""
    init_noise: float = field(default=0.03, metadata={"gt": 0.0})
    """Initial exploration std of the correction, in action units (ResFiT's TD3 noise: 0.025-0.05):
    a fresh residual explores this close around the base (its mean is exactly the base's)."""
    base: str = ""
    """The base policy's MODEL file (set by the run from --base-policy; an actor on another machine
    gives its own copy's path with --base-policy)."""
    base_hash: str | None = None
    """The base model's content hash: a residual over another base is refused."""


@dataclass(frozen=True)
class CriticConfig(GaussianPolicyConfig):
    """A run's critic ensemble saved for ranking actions at test time (best-of-N): its encoder
    fields as the run's policy's (`hidden` is the critics' widths) and the ensemble's shape. Its
    file holds the vectorised layout whichever implementation trained it: the fastest to run."""

    critics: int = field(default=10, metadata={"min": 1})
    """Ensemble size E."""
    critic_layer_norm: bool = True
    """LayerNorm in every hidden layer."""
