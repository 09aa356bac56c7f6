"""The `Policy` interface: observation -> action, batched and single, with the observation/action
spec it was built for, a state dict and a device. The actor process loads and runs only policies;
algorithms (learner/) own critics, targets and optimisers around one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class PolicySpec:
    """What a policy reads and writes: the state vector, the cameras (uint8 HxWx3 frames of
    `image_size`), and `action_dim` actions in [-1, 1]."""

    state_dim: int
    action_dim: int
    cameras: tuple[str, ...] = ()
    image_size: int = 128

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "cameras": list(self.cameras)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicySpec:
        return cls(
            state_dim=int(data["state_dim"]),
            action_dim=int(data["action_dim"]),
            cameras=tuple(data.get("cameras", ())),
            image_size=int(data.get("image_size", 128)),
        )

    def check(self, other: PolicySpec, what: str) -> None:
        """Refuse a mismatch, naming both sides."""
        if self != other:
            raise ValueError(f"{what}: the policy expects {self.to_json()}, got {other.to_json()}")


class Policy(nn.Module, ABC):
    """Everything needed to act. Subclasses implement `act_batch`; `act` runs one observation.

    `kind` names the class in the policy registry (policies.registry) and in `describe()`, which is
    what a learner sends an actor so it can build the same policy and load pushed weights into it.
    `discrete_gripper`: the last action dim is a tri-state gripper command (-1 open, 0 stay, +1
    close) that the env must execute as such (envs.DiscreteGripper). `samples`: it draws its
    actions and implements `candidates` (policies.verifier.BestOfN ranks them)."""

    kind: ClassVar[str]
    discrete_gripper: ClassVar[bool] = False
    samples: ClassVar[bool] = False  # draws its actions, so it has `candidates` for best-of-N

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__()
        self.spec = spec
        # An empty buffer that follows .to(device), so parameter-free policies know their device too.
        self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._device_anchor.device

    @abstractmethod
    def act_batch(
        self, state: torch.Tensor, images: dict[str, torch.Tensor], deterministic: bool = False
    ) -> torch.Tensor:
        """state float (B, S), images uint8 {camera: (B, H, W, 3)}, on `device` -> actions (B, A),
        without gradients (acting; algorithms train through the policy's modules directly)."""

    def batch_of(self, obs: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One env observation (numpy) -> (state (1, S), images {camera: (1, H, W, 3)}) on `device`."""
        state = torch.as_tensor(obs["state"], device=self.device).unsqueeze(0)
        images = {
            c: torch.as_tensor(obs["images"][c], device=self.device).unsqueeze(0) for c in self.spec.cameras
        }
        return state, images

    @torch.no_grad()
    def act(self, obs: dict[str, Any], deterministic: bool = False) -> np.ndarray:
        """One env observation (numpy) -> one action in [-1, 1] (numpy float32)."""
        state, images = self.batch_of(obs)
        return self.act_batch(state, images, deterministic)[0].cpu().numpy().astype(np.float32)

    def reset(self) -> None:
        """An episode starts (stateful policies, e.g. action chunks or a scripted expert, restart)."""

    def stages(self) -> tuple[Policy, Any]:
        """How the actor's composition runs this policy: (its base stage, its residual stage or
        None). A residual policy is the residual stage over its frozen base."""
        return self, None

    def config_json(self) -> dict[str, Any]:
        """The policy's typed config as JSON (empty for policies without one)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """What another process needs to build this policy: kind, spec, config (not the weights)."""
        return {"kind": self.kind, "spec": self.spec.to_json(), "config": self.config_json()}

    def pushed_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights a learner pushes to its actors (all of them, unless a policy says otherwise)."""
        return self.state_dict()

    def load_weights(self, weights: dict[str, Any]) -> None:
        """Load pushed weights (tensors or numpy arrays) in place; refuse any that do not fit."""
        copy_weights(self.pushed_state_dict(), weights, "policy")

    @torch.no_grad()
    def candidates(
        self, state: torch.Tensor, images: dict[str, torch.Tensor], n: int, generator: torch.Generator
    ) -> torch.Tensor:
        """n actions (B, n, A) this policy might take at each observation, drawn with `generator`,
        for a critic to choose from (best-of-N). Only policies that sample have them."""
        raise ValueError(not_sampling(self.kind))


def not_sampling(kind: str) -> str:
    return (
        f"a {kind} policy has one action per observation; best-of-N needs a policy that samples "
        "(sac, residual, bc-gaussian, bc-shortcut)"
    )


@torch.no_grad()
def copy_weights(own: dict[str, torch.Tensor], weights: dict[str, Any], what: str) -> None:
    """Copy `weights` (tensors or numpy arrays) into the tensors of `own` by name, refusing a set of
    names or a shape that does not fit."""
    if set(weights) != set(own):
        missing, extra = sorted(set(own) - set(weights))[:5], sorted(set(weights) - set(own))[:5]
        raise ValueError(f"{what} weights do not fit this model: missing {missing}, unexpected {extra}")
    for name, target in own.items():
        value = torch.as_tensor(weights[name])
        if value.shape != target.shape:
            raise ValueError(f"{what} tensor {name}: shape {tuple(value.shape)} != {tuple(target.shape)}")
        target.copy_(value)
