"""Hard limits below the policy: every end-effector command is checked for finiteness and
clamped into the workspace box before it can reach an arm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WorkspaceLimits:
    """An axis-aligned box (base frame, metres) that the TCP target may never leave."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]

    def __post_init__(self) -> None:
        if not np.all(np.asarray(self.lo) < np.asarray(self.hi)):
            raise ValueError(f"workspace lo {self.lo} must be below hi {self.hi} on every axis")

    def clamp(self, pos: np.ndarray) -> np.ndarray:
        return np.clip(pos, self.lo, self.hi)

    def signed_distance(self, pos: np.ndarray) -> float:
        """Distance to the nearest face: > 0 inside, < 0 outside (by how far the worst axis is out)."""
        pos = np.asarray(pos, dtype=np.float64)
        return float(np.min(np.minimum(pos - np.asarray(self.lo), np.asarray(self.hi) - pos)))


def validate_command(pos: np.ndarray, quat: np.ndarray, gripper: float) -> None:
    """Raise ValueError on anything a robot must never receive: NaN/inf or wrong shapes."""
    pos = np.asarray(pos)
    quat = np.asarray(quat)
    if pos.shape != (3,) or quat.shape != (4,):
        raise ValueError(f"ee target needs pos (3,) and quat (4,), got {pos.shape} and {quat.shape}")
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat)) and np.isfinite(gripper)):
        raise ValueError(f"non-finite robot command: pos={pos}, quat={quat}, gripper={gripper}")
    if abs(np.linalg.norm(quat) - 1.0) > 1e-3:
        raise ValueError(f"ee target quaternion must be unit length, got norm {np.linalg.norm(quat):.4f}")
