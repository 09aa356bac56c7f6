"""Observation encoders. Images arrive as uint8 (N, H, W, 3) and are turned into floats on the
device; all cameras of a batch go through the image trunk in ONE pass (stacked along the batch),
so every critic head and the actor share a single encoding per batch.

- `ConvEncoder`: small conv net trained from scratch by the critic (RLPD / DrQ pixel variant).
- `FrozenEncoder`: a frozen trunk + SERL's trainable head (spatial-embedding pooling -> 256 ->
  LayerNorm -> tanh). The trunk is torchvision's ResNet-18 (`resnet18`; ImageNet weights through
  torchvision's weights API when `pretrained=True`, which needs internet once: tests use
  `pretrained=False`) or a `FrameTrunk` pretrained on the task's own frames (`pretrained:MODEL`,
  see policies.encoder_files). Its maps of a frame never change: the learner caches them.
- Proprioception: Linear -> LayerNorm -> tanh."""

from __future__ import annotations

import hashlib
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
    learned weightings over the H x W grid, summed -> (N, C * num_features).

    Computed channel-major, as C matmuls (N, H*W) @ (H*W, F) in one bmm over a (C, N, H*W) copy of
    the maps (made while converting them to float32): the kernel's gradient is then C plain
    (H*W, N) @ (N, F) products. The same einsum over the (N, C, H*W) layout took 2x longer forward
    and backward on CPU (it transposes internally, and its backward again)."""

    def __init__(self, channels: int, height: int, width: int, num_features: int = 8) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(channels, height * width, num_features))
        nn.init.kaiming_normal_(self.kernel, nonlinearity="linear")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        n, c, h, w = features.shape
        channel_major = torch.empty((c, n, h * w), dtype=self.kernel.dtype, device=features.device)
        channel_major.copy_(features.reshape(n, c, h * w).transpose(0, 1))
        pooled = torch.bmm(channel_major, self.kernel)  # (C, N, F)
        return pooled.transpose(0, 1).reshape(n, -1)


class FrameTrunk(nn.Module):
    """The trunk `realrl encoder pretrain` trains and a run then freezes: four 3x3 conv layers of
    `channels`, padding 1, the first ones stride 2 until the map is about 16x16 (one to three
    halvings: 16x16 from 32 to 128 px, 8x8 at 16 px). Small on purpose: its maps are cached per
    frame (32 x 16 x 16 in fp16 is 16 KB per camera, a third of the frame) and the actor runs it
    every control step."""

    def __init__(self, image_size: int, channels: int = 32) -> None:
        super().__init__()
        halvings = min(3, max(1, round(math.log2(image_size / 16))))
        layers, in_channels = [], 3
        for i, stride in enumerate((2,) * halvings + (1,) * (4 - halvings)):
            layers.append(nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1))
            if i < 3:  # the last layer's maps stay linear: a spatial softmax reads them (DSAE)
                layers.append(nn.ReLU())
            in_channels = channels
        self.layers = nn.Sequential(*layers)
        self.image_size, self.channels = image_size, channels

    def arch(self) -> dict:
        """What rebuilds this trunk (saved with its weights)."""
        return {"kind": "frame-trunk", "image_size": self.image_size, "channels": self.channels}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """float (N, 3, H, W) in [0, 1] -> maps (N, C, H/8, W/8)."""
        return self.layers(images - 0.5)


class ResNet18Trunk(nn.Module):
    """torchvision's ResNet-18 without its pooling and classifier, ImageNet-normalised input; with
    `pretrained`, ImageNet weights through torchvision's weights API (downloaded once to the torch
    hub cache: not possible on machines without internet, where tests use `pretrained=False`)."""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        from torchvision.models import ResNet18_Weights, resnet18

        weights = ResNet18_Weights.IMAGENET1K_V1 if pretrained else None
        self.layers = nn.Sequential(*list(resnet18(weights=weights).children())[:-2])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers((images - self.mean) / self.std)


class FrozenEncoder(nn.Module):
    """A frozen trunk (eval mode, no gradients) shared by every camera, and per camera SERL's
    trainable head: spatial-embedding pooling -> `feature_dim` -> LayerNorm -> tanh (one head per
    camera, as SERL's per-image-key encoders: where a thing sits means something else in each
    view). The trunk's maps of a frame never change, so the learner's replay stores them once per
    frame (`maps`, fp16) and the update runs only the heads on them."""

    frozen = True

    def __init__(
        self,
        trunk: nn.Module,
        image_size: int,
        cameras: int,
        feature_dim: int = 256,
        num_features: int = 8,
    ) -> None:
        super().__init__()
        self.trunk = trunk.requires_grad_(False).eval()
        with torch.no_grad():
            self.map_shape = tuple(self.trunk(torch.zeros(1, 3, image_size, image_size)).shape[1:])
        c, h, w = self.map_shape
        self.heads = nn.ModuleList(
            nn.Sequential(
                SpatialEmbedding(c, h, w, num_features),
                nn.Linear(c * num_features, feature_dim),
                nn.LayerNorm(feature_dim),
                nn.Tanh(),
            )
            for _ in range(cameras)
        )
        self.feature_dim = feature_dim

    def train(self, mode: bool = True) -> FrozenEncoder:
        super().train(mode)
        self.trunk.eval()  # frozen: a ResNet's BatchNorm keeps its statistics
        return self

    @torch.no_grad()
    def maps(self, images: torch.Tensor) -> torch.Tensor:
        """float (N, 3, H, W) in [0, 1] -> the trunk's maps (N, C, h, w) as fp16 (what the replay
        caches: the head sees the same rounding whether it reads the cache or the live frames)."""
        return self.trunk(images).half()

    def head_features(self, maps: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """Per camera k, maps[k] (N, C, h, w), any float dtype -> (N, cameras * feature_dim)."""
        return torch.cat([head(m) for head, m in zip(self.heads, maps, strict=True)], dim=-1)


def trunk_hash(trunk: nn.Module) -> str:
    """Content hash of a trunk's weights (names, dtypes, shapes, bytes): the encoder's identity,
    the same wherever the weights were saved or loaded."""
    return tensors_hash(trunk.state_dict())


def tensors_hash(tensors: dict[str, torch.Tensor], prefix: bytes = b"") -> str:
    """Content hash of named tensors (names, dtypes, shapes, bytes), after `prefix`."""
    digest = hashlib.sha256(prefix)
    for name, tensor in sorted(tensors.items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)}".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()[:16]


STATE_CLIP = 10.0  # standardised state values beyond +-10 std are outliers, not information


def make_image_encoder(
    kind: str, image_size: int, cameras: Sequence[str], pretrained: bool
) -> ConvEncoder | FrozenEncoder:
    """conv (trained by the critic), resnet18 (frozen; ImageNet weights if `pretrained`) or
    pretrained:MODEL (a frozen trunk from `realrl encoder pretrain`, refused unless it was trained
    on these cameras at this image size)."""
    if kind == "conv":
        return ConvEncoder(image_size)
    if kind == "resnet18":
        return FrozenEncoder(ResNet18Trunk(pretrained), image_size, len(cameras))
    if kind.startswith(PRETRAINED_PREFIX):
        from policies.encoder_files import load_encoder_model

        model = load_encoder_model(kind[len(PRETRAINED_PREFIX) :])
        model.check_fits(tuple(cameras), image_size)
        return FrozenEncoder(model.trunk, image_size, len(cameras))
    if kind == AUTO_ENCODER:
        raise ValueError(
            "image encoder auto is made concrete by the run that trains it (conv on a GPU, a frozen "
            "trunk pretrained on the run's frames on a CPU); a policy needs the concrete one"
        )
    raise ValueError(f"image encoder must be conv, resnet18 or pretrained:MODEL, got {kind!r}")


PRETRAINED_PREFIX = "pretrained:"
AUTO_ENCODER = "auto"


class ObservationEncoder(nn.Module):
    """{"state", "images"} -> one feature vector per sample. With no cameras the (standardised) state
    is the feature vector (RLPD's state-based agent has no encoder).

    The state is standardised with a mean and std fitted once from data (`fit_state_normalizer`),
    kept as buffers so checkpoints and the weights sent to actors carry them. Why: object positions
    vary by centimetres in metre units; unscaled, the networks barely see where the cube is.

    With a frozen image encoder (`frozen_trunk`), `frame_maps` gives the per-frame maps a replay
    caches and `forward(state, maps=...)` runs only the trainable part on them."""

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
        # channels_last (NHWC) weights and inputs: 1.7x faster conv forward+backward on CPU (oneDNN,
        # measured at 128 px), and the layout tensor cores want on GPU.
        image_encoder = make_image_encoder(kind, image_size, self.cameras, pretrained)
        self.image_encoder = image_encoder.to(memory_format=torch.channels_last)
        self.proprio = nn.Sequential(nn.Linear(state_dim, proprio_dim), nn.LayerNorm(proprio_dim), nn.Tanh())
        self.output_dim = proprio_dim + len(self.cameras) * self.image_encoder.feature_dim

    @property
    def frozen_trunk(self) -> bool:
        """Whether the image encoder's trunk is frozen, so its maps can be cached per frame."""
        return getattr(self.image_encoder, "frozen", False)

    @property
    def map_shape(self) -> tuple[int, int, int]:
        return self.image_encoder.map_shape

    def _autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)

    @torch.no_grad()
    def frame_maps(self, images: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """uint8 {camera: (N, H, W, 3)} -> the frozen trunk's fp16 maps {camera: (N, C, h, w)}, all
        cameras in one pass."""
        n = len(images[self.cameras[0]])
        stacked = to_float_nchw(torch.cat([images[c] for c in self.cameras]))
        stacked = stacked.contiguous(memory_format=torch.channels_last)
        with self._autocast(stacked.device):
            maps = self.image_encoder.maps(stacked)
        return {c: maps[i * n : (i + 1) * n].contiguous() for i, c in enumerate(self.cameras)}

    def forward(
        self,
        state: torch.Tensor,
        images: torch.Tensor | None = None,
        maps: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """state (N, S) and, for the K cameras in `self.cameras` order, either images float
        (K, N, 3, H, W) or a frozen trunk's maps: (K, N, C, h, w), or K tensors (N, C, h, w), in
        any float dtype (the replay's fp16 cache is read as is)."""
        state = ((state - self.state_mean) / self.state_std).clamp(-STATE_CLIP, STATE_CLIP)
        if self.image_encoder is None:
            return self.proprio(state)
        if maps is None:
            maps_or_features = self._image_pass(images)
            if not self.frozen_trunk:
                return torch.cat([self.proprio(state), maps_or_features], dim=-1)
            maps = maps_or_features
        return torch.cat([self.proprio(state), self.image_encoder.head_features(maps)], dim=-1)

    def _image_pass(self, images: torch.Tensor) -> torch.Tensor:
        """float (K, N, 3, H, W) through the image trunk in one pass, all cameras: a trained encoder's
        features (N, K * F), or a frozen trunk's fp16 maps (K, N, C, h, w) exactly as frame_maps
        caches them (the heads then see what they see on the cache)."""
        k, n = images.shape[:2]
        stacked = images.reshape(k * n, *images.shape[2:]).contiguous(memory_format=torch.channels_last)
        with self._autocast(stacked.device):
            if self.frozen_trunk:
                maps = self.image_encoder.maps(stacked)
                return maps.reshape(k, n, *maps.shape[1:])
            features = self.image_encoder(stacked).float()
        return features.reshape(k, n, -1).permute(1, 0, 2).reshape(n, -1)

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
