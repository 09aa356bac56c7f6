"""Observation encoders. Images arrive as uint8 (N, H, W, 3) and are turned into floats on the
device; all cameras of a batch go through the image trunk in ONE pass (stacked along the batch),
so every critic head and the actor share a single encoding per batch.

- `ConvEncoder`: small conv net trained from scratch (RLPD / DrQ pixel variant).
- `ResNet18Encoder`: torchvision ResNet-18, frozen, with ImageNet weights loaded through
  torchvision's weights API when `pretrained=True`; followed by trainable spatial-embedding pooling
  -> 256 -> LayerNorm -> tanh (SERL's recipe). Weights cannot be downloaded everywhere (CI): tests
  use `pretrained=False`; on a workstation the first use downloads them to the torch hub cache.
- Proprioception: Linear -> LayerNorm -> tanh."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_float_nchw(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


class ConvEncoder(nn.Module):
    """4 conv layers of 32 channels, 3x3 -> Linear -> LayerNorm -> tanh (RLPD's pixel encoder).

    RLPD's strides (2, 1, 1, 1) are for 64-pixel images. Larger images get one more stride-2 layer
    per doubling (128 px: 2, 2, 1, 1), so the trunk sees and costs what RLPD's does at 64 px instead
    of 4x more: at 128 px that is 27 M multiply-adds per image instead of 100 M, and a 23 k-wide
    instead of a 104 k-wide linear head."""

    def __init__(self, image_size: int, feature_dim: int = 50, channels: int = 32) -> None:
        super().__init__()
        layers, in_channels = [], 3
        for stride in conv_strides(image_size):
            layers += [nn.Conv2d(in_channels, channels, 3, stride=stride), nn.ReLU()]
            in_channels = channels
        self.trunk = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            flat = self.trunk(torch.zeros(1, 3, image_size, image_size)).shape[1]
        self.head = nn.Sequential(nn.Linear(flat, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())
        self.feature_dim = feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: float (N, 3, H, W) in [0, 1] -> (N, feature_dim)."""
        return self.head(self.trunk(images - 0.5))


def native_bf16(device: torch.device) -> bool:
    """Whether the device computes bfloat16 natively (CUDA sm80+, CPUs with AVX512-BF16 or AMX);
    elsewhere bf16 autocast would be emulated and slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def conv_strides(image_size: int, layers: int = 4) -> tuple[int, ...]:
    """RLPD's (2, 1, 1, 1) up to ~90 px (DrQ used it at 84), one more leading stride 2 per doubling."""
    halvings = 1 + max(0, round(math.log2(image_size / 64)))
    halvings = min(halvings, layers)
    return (2,) * halvings + (1,) * (layers - halvings)


class SpatialEmbedding(nn.Module):
    """Learned spatial pooling (SERL's SpatialLearnedEmbeddings): for every channel, `num_features`
    learned weightings over the H x W grid, summed -> (N, C * num_features)."""

    def __init__(self, channels: int, height: int, width: int, num_features: int = 8) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(channels, height * width, num_features))
        nn.init.kaiming_normal_(self.kernel, nonlinearity="linear")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n, c, h, w = features.shape
        pooled = torch.einsum("ncp,cpf->ncf", features.reshape(n, c, h * w), self.kernel)
        return pooled.reshape(n, -1)


class ResNet18Encoder(nn.Module):
    """Frozen ImageNet ResNet-18 trunk (eval mode, no gradients) + trainable spatial pooling head."""

    def __init__(
        self, image_size: int, feature_dim: int = 256, pretrained: bool = True, num_features: int = 8
    ):
        super().__init__()
        from torchvision.models import ResNet18_Weights, resnet18

        weights = ResNet18_Weights.IMAGENET1K_V1 if pretrained else None
        backbone = resnet18(weights=weights)
        self.trunk = nn.Sequential(*list(backbone.children())[:-2])  # drop avgpool and fc
        self.trunk.requires_grad_(False)
        self.trunk.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        with torch.no_grad():
            _, c, h, w = self.trunk(torch.zeros(1, 3, image_size, image_size)).shape
        self.head = nn.Sequential(
            SpatialEmbedding(c, h, w, num_features),
            nn.Linear(c * num_features, feature_dim),
            nn.LayerNorm(feature_dim),
            nn.Tanh(),
        )
        self.feature_dim = feature_dim

    def train(self, mode: bool = True) -> ResNet18Encoder:
        super().train(mode)
        self.trunk.eval()  # frozen: BatchNorm keeps ImageNet statistics
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            trunk_features = self.trunk((images - self.mean) / self.std)
        return self.head(trunk_features)


IMAGE_ENCODERS = {"conv": ConvEncoder, "resnet18": ResNet18Encoder}
STATE_CLIP = 10.0  # standardised state values beyond +-10 std are outliers, not information


class ObservationEncoder(nn.Module):
    """{"state", "images"} -> one feature vector per sample. With no cameras the (standardised) state
    is the feature vector (RLPD's state-based agent has no encoder).

    The state is standardised with a mean and std fitted once from data (`fit_state_normalizer`),
    kept as buffers so checkpoints and the weights sent to actors carry them. Why: object positions
    vary by centimetres in metre units; unscaled, the networks barely see where the cube is."""

    def __init__(
        self,
        state_dim: int,
        cameras: Sequence[str] = (),
        image_size: int = 128,
        kind: str = "conv",
        pretrained: bool = False,
        proprio_dim: int = 64,
        bf16: bool = False,
    ) -> None:
        super().__init__()
        self.cameras = tuple(cameras)
        self.bf16 = bf16  # autocast the image trunk to bfloat16 (see native_bf16)
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))
        self.register_buffer("normalizer_fitted", torch.zeros((), dtype=torch.bool))
        if not self.cameras:
            self.image_encoder = None
            self.proprio = nn.Identity()
            self.output_dim = state_dim
            return
        if kind not in IMAGE_ENCODERS:
            raise ValueError(f"image encoder must be one of {sorted(IMAGE_ENCODERS)}, got {kind!r}")
        kwargs = {"pretrained": pretrained} if kind == "resnet18" else {}
        # channels_last (NHWC) weights and inputs: 1.7x faster conv forward+backward on CPU (oneDNN,
        # measured at 128 px), and the layout tensor cores want on GPU.
        self.image_encoder = IMAGE_ENCODERS[kind](image_size, **kwargs).to(memory_format=torch.channels_last)
        self.proprio = nn.Sequential(nn.Linear(state_dim, proprio_dim), nn.LayerNorm(proprio_dim), nn.Tanh())
        self.output_dim = proprio_dim + len(self.cameras) * self.image_encoder.feature_dim

    def forward(self, state: torch.Tensor, images: torch.Tensor | None = None) -> torch.Tensor:
        """state (N, S); images float (K, N, 3, H, W) for the K cameras in `self.cameras` order."""
        state = ((state - self.state_mean) / self.state_std).clamp(-STATE_CLIP, STATE_CLIP)
        if self.image_encoder is None:
            return self.proprio(state)
        k, n = images.shape[:2]
        stacked = images.reshape(k * n, *images.shape[2:]).contiguous(memory_format=torch.channels_last)
        with torch.autocast(stacked.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            features = self.image_encoder(stacked).float()  # one pass, all cameras
        features = features.reshape(k, n, -1).permute(1, 0, 2).reshape(n, -1)
        return torch.cat([self.proprio(state), features], dim=-1)

    @torch.no_grad()
    def fit_state_normalizer(self, states: torch.Tensor, min_std: float = 0.01) -> None:
        """Per-dim mean and std of `states` (N, S); std floored at `min_std` so a dim that was
        constant in the data (a velocity at rest) cannot blow up later."""
        if states.ndim != 2 or states.shape[1] != self.state_mean.shape[0] or len(states) < 2:
            raise ValueError(
                f"need states of shape (N >= 2, {self.state_mean.shape[0]}), got {tuple(states.shape)}"
            )
        states = states.to(self.state_mean.device, torch.float32)
        self.state_mean.copy_(states.mean(dim=0))
        self.state_std.copy_(states.std(dim=0).clamp_min(min_std))
        self.normalizer_fitted.fill_(True)
