"""Typed configs of the policies, as plain dataclasses (no torch import) so they can travel in the
learner's welcome message and `--help` stays instant. An algorithm's config names the policy config
it trains (learner.configs.SACConfig.policy_config)."""

from __future__ import annotations

from dataclasses import dataclass


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
