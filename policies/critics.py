"""Critic ensembles of the RLPD / SERL algorithms: a vectorised ensemble (every layer one batched
matmul for all members) and the loop version it is measured against. They take features, never raw
images. The learner trains them; they live here because a trained one also acts, as the verifier
that ranks a sampling policy's candidates at test time (policies.verifier)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from policies.networks import mlp


class EnsembleLinear(nn.Module):
    """E independent linear layers applied in one batched matmul: (E, B, in) -> (E, B, out)."""

    def __init__(self, ensemble: int, input_dim: int, output_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble, input_dim, output_dim))
        self.bias = nn.Parameter(torch.empty(ensemble, 1, output_dim))
        # Same distribution as nn.Linear's default, member by member.
        bound = 1.0 / math.sqrt(input_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, members: list[int] | None = None) -> torch.Tensor:
        if members is None:
            return torch.baddbmm(self.bias, x, self.weight)
        return torch.baddbmm(self.bias[members], x, self.weight[members])


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over features with a separate affine transform per ensemble member."""

    def __init__(self, ensemble: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ensemble, 1, width))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, width))

    def forward(self, x: torch.Tensor, members: list[int] | None = None) -> torch.Tensor:
        weight, bias = (
            (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        )
        return torch.addcmul(bias, F.layer_norm(x, x.shape[-1:]), weight)


class CriticEnsemble(nn.Module):
    """E Q-functions Q(features, action) -> (E, B), vectorised: every layer is one batched matmul
    for all members. LayerNorm in every hidden layer (RLPD)."""

    def __init__(
        self, input_dim: int, action_dim: int, hidden: Sequence[int], ensemble: int, layer_norm: bool = True
    ) -> None:
        super().__init__()
        self.ensemble = ensemble
        layers: list[nn.Module] = []
        width_in = input_dim + action_dim
        for width in hidden:
            layers.append(EnsembleLinear(ensemble, width_in, width))
            if layer_norm:
                layers.append(EnsembleLayerNorm(ensemble, width))
            layers.append(nn.ReLU())
            width_in = width
        layers.append(EnsembleLinear(ensemble, width_in, 1))
        self.net = nn.Sequential(*layers)

    def forward(
        self, features: torch.Tensor, action: torch.Tensor, members: list[int] | None = None
    ) -> torch.Tensor:
        """(E, B) Q-values, or (len(members), B) computing only those members."""
        count = self.ensemble if members is None else len(members)
        first = self.net[0]
        weight, bias = (
            (first.weight, first.bias) if members is None else (first.weight[members], first.bias[members])
        )
        # The first layer over [features, action] as two products (see pair_linear).
        split = features.shape[-1]
        x = torch.baddbmm(bias, features.expand(count, *features.shape), weight[:, :split])
        x = x + torch.bmm(action.expand(count, *action.shape), weight[:, split:])
        for layer in self.net[1:]:
            x = layer(x, members) if isinstance(layer, EnsembleLinear | EnsembleLayerNorm) else layer(x)
        return x.squeeze(-1)


class LoopCriticEnsemble(nn.Module):
    """The same ensemble as E separate MLPs run one after another; kept to measure against the
    vectorised version per device (`realrl bench learner --critic-impl`)."""

    def __init__(
        self, input_dim: int, action_dim: int, hidden: Sequence[int], ensemble: int, layer_norm: bool = True
    ) -> None:
        super().__init__()
        self.ensemble = ensemble
        self.members = nn.ModuleList(
            mlp(input_dim + action_dim, hidden, 1, layer_norm=layer_norm) for _ in range(ensemble)
        )

    def forward(
        self, features: torch.Tensor, action: torch.Tensor, members: list[int] | None = None
    ) -> torch.Tensor:
        chosen = self.members if members is None else [self.members[i] for i in members]
        qs = [member[1:](pair_linear(member[0], features, action)).squeeze(-1) for member in chosen]
        return torch.stack(qs)


def pair_linear(layer: nn.Linear, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """layer(cat([features, action])) as two products, without the cat: when the features carry no
    gradient (the actor's update, on detached features), the backward computes the action's
    gradient alone, 4 columns instead of every feature's (with pixel features, 580: a third of
    the actor update's matmul work)."""
    split = features.shape[-1]
    return torch.addmm(layer.bias, features, layer.weight[:, :split].T) + action @ layer.weight[:, split:].T


def vectorized_state_dict(critic: nn.Module) -> dict[str, torch.Tensor]:
    """The ensemble's weights in CriticEnsemble's layout, whichever implementation holds them: the
    loop's members stacked layer by layer (both build the same layers at the same indices; a linear
    layer's (out, in) weight becomes (in, out), its bias and a LayerNorm's affine (1, width))."""
    if isinstance(critic, CriticEnsemble):
        return critic.state_dict()
    if not isinstance(critic, LoopCriticEnsemble):
        raise TypeError(f"not a critic ensemble: {type(critic).__name__}")
    state = {}
    for index, layer in enumerate(critic.members[0]):
        if isinstance(layer, nn.ReLU):
            continue
        layers = [member[index] for member in critic.members]
        weight = torch.stack([m.weight.T if isinstance(layer, nn.Linear) else m.weight for m in layers])
        state[f"net.{index}.weight"] = weight if isinstance(layer, nn.Linear) else weight.unsqueeze(1)
        state[f"net.{index}.bias"] = torch.stack([m.bias for m in layers]).unsqueeze(1)
    return state


def make_critic(
    impl: str, input_dim: int, action_dim: int, hidden: Sequence[int], ensemble: int, layer_norm: bool = True
) -> nn.Module:
    if impl not in CRITIC_IMPLS:
        raise ValueError(f"critic implementation must be one of {sorted(CRITIC_IMPLS)}, got {impl!r}")
    return CRITIC_IMPLS[impl](input_dim, action_dim, hidden, ensemble, layer_norm)


CRITIC_IMPLS = {"vectorized": CriticEnsemble, "loop": LoopCriticEnsemble}
