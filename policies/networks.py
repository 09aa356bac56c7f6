"""Networks a policy acts with: MLPs and the tanh-Gaussian actor. They take features, never raw
images (encoders live in `policies.encoders`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def mlp(input_dim: int, hidden: Sequence[int], output_dim: int, *, layer_norm: bool = False) -> nn.Sequential:
    """Linear -> [LayerNorm] -> ReLU per hidden layer, then a linear output layer."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(input_dim, width)] + ([nn.LayerNorm(width)] if layer_norm else []) + [nn.ReLU()]
        input_dim = width
    layers.append(nn.Linear(input_dim, output_dim))
    return nn.Sequential(*layers)


class TanhGaussianActor(nn.Module):
    """pi(a | features): a Gaussian squashed by tanh into [-1, 1], log-std clipped to a range."""

    def __init__(
        self,
        input_dim: int,
        action_dim: int,
        hidden: Sequence[int],
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
    ) -> None:
        super().__init__()
        self.net = mlp(input_dim, hidden, 2 * action_dim)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def distribution(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(features).chunk(2, dim=-1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def forward(
        self, features: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Action (B, A) in [-1, 1] and its log-probability (B,) under the squashed distribution."""
        mean, log_std = self.distribution(features)
        std = log_std.exp()
        if deterministic:
            pre_tanh = mean
        else:
            noise = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
            pre_tanh = mean + std * noise
        log_prob = (-0.5 * ((pre_tanh - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log |d tanh(u) / du| = log(1 - tanh(u)^2), written stably: 2 (log 2 - u - softplus(-2u)).
        log_prob = log_prob - (2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))).sum(-1)
        return torch.tanh(pre_tanh), log_prob

    def candidates(self, features: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """n actions (B, n, A) per row: the deterministic action tanh(mean) first, then n - 1 samples."""
        mean, log_std = self.distribution(features)
        noise = torch.randn(
            (len(mean), n - 1, mean.shape[1]), device=mean.device, dtype=mean.dtype, generator=generator
        )
        pre_tanh = torch.cat([mean.unsqueeze(1), mean.unsqueeze(1) + log_std.exp().unsqueeze(1) * noise], 1)
        return torch.tanh(pre_tanh)
