"""The typed batch every learner loss consumes. `terminated` and `truncated` stay apart: only a
true termination cuts the bootstrap; a time limit does not."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch


@dataclass
class Batch:
    """B transitions (n-step when the buffer is configured so), tensors on one device.

    `reward` is the discounted sum of the n (or fewer, at an episode end) rewards and `discount`
    the factor gamma^k for the k steps summed, so the target is
    reward + discount * (1 - terminated) * V(next_obs)."""

    state: torch.Tensor  # (B, S) float32
    action: torch.Tensor  # (B, A) float32
    reward: torch.Tensor  # (B,) float32
    discount: torch.Tensor  # (B,) float32, gamma^k
    terminated: torch.Tensor  # (B,) float32, 1 = true terminal inside the k steps
    truncated: torch.Tensor  # (B,) float32, 1 = the episode hit its time limit inside the k steps
    next_state: torch.Tensor  # (B, S) float32
    images: dict[str, torch.Tensor] = field(default_factory=dict)  # camera -> (B, H, W, 3) uint8
    next_images: dict[str, torch.Tensor] = field(default_factory=dict)
    # A frozen encoder's cached maps instead of the frames: camera -> (B, C, h, w) float16.
    maps: dict[str, torch.Tensor] = field(default_factory=dict)
    next_maps: dict[str, torch.Tensor] = field(default_factory=dict)
    # A residual run's base-policy action at obs and at next_obs, (B, A) float32; None otherwise.
    base_action: torch.Tensor | None = None
    next_base_action: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.state.shape[0]

    @property
    def mask(self) -> torch.Tensor:
        """1 where the target bootstraps from next_obs, 0 after a true termination."""
        return 1.0 - self.terminated

    def to(self, device: torch.device | str, non_blocking: bool = True) -> Batch:
        def move(value):
            if value is None:
                return None
            if isinstance(value, dict):
                return {k: v.to(device, non_blocking=non_blocking) for k, v in value.items()}
            return value.to(device, non_blocking=non_blocking)

        return Batch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})

    @staticmethod
    def cat(batches: list[Batch]) -> Batch:
        """Concatenate along the batch dimension (demo half + online half)."""

        def join(name):
            values = [getattr(b, name) for b in batches]
            if values[0] is None:
                return None
            if isinstance(values[0], dict):
                return {k: torch.cat([v[k] for v in values]) for k in values[0]}
            return torch.cat(values)

        return Batch(**{f.name: join(f.name) for f in fields(Batch)})

    def split(self, parts: int) -> list[Batch]:
        """`parts` equal minibatches (for UTD > 1 from one sampled batch), row i going to part
        i % parts: a mixed batch holds its demo rows first, so contiguous slices would give the first
        critic updates only demos and the actor's (last) slice only online rows, not RLPD's 50/50."""
        if len(self) % parts:
            raise ValueError(f"batch of {len(self)} does not split into {parts} equal parts")

        def piece(value, i):
            if value is None:
                return None
            if isinstance(value, dict):
                return {k: v[i::parts] for k, v in value.items()}
            return value[i::parts]

        names = [f.name for f in fields(self)]
        return [Batch(**{name: piece(getattr(self, name), i) for name in names}) for i in range(parts)]
