"""Uniform random actions in [-1, 1]: exploration before learning starts (no demos), and the
baseline any learned policy must beat."""

from __future__ import annotations

import torch

from policies.base import Policy, PolicySpec


class RandomPolicy(Policy):
    kind = "random"

    def __init__(self, spec: PolicySpec, seed: int = 0) -> None:
        super().__init__(spec)
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def from_description(cls, spec: PolicySpec, config: dict, device="cpu", seed: int = 0) -> RandomPolicy:
        return cls(spec, seed)

    def act_batch(
        self, state: torch.Tensor, images: dict[str, torch.Tensor], deterministic: bool = False
    ) -> torch.Tensor:
        # Drawn on the CPU generator (its state is checkpointed), then moved to the policy's device.
        draws = torch.rand(len(state), self.spec.action_dim, generator=self.generator)
        return (draws * 2.0 - 1.0).to(self.device)
