"""Scripted experts for the twin's tasks. They read privileged sim state (exact object poses) and
emit env actions: [dx, dy, dz] in units of the task's action scale, then the gripper (+1 close,
-1 open). `noise` adds Gaussian action noise for sub-optimal demos."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from robot import Pose, RobotState
from sim.scenes import PegInsertScene, PickCubeScene

OPEN, CLOSE = -1.0, 1.0


class ScriptedExpert(ABC):
    def __init__(self, action_scale: float, noise: float = 0.0, seed: int | None = None) -> None:
        self.action_scale = action_scale
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.phase = 0
        self.phase_steps = 0

    def act(self, state: RobotState, objects: dict[str, Pose]) -> np.ndarray:
        action = self._act(state, objects)
        self.phase_steps += 1
        if self.noise > 0:
            action = action + self.rng.normal(0.0, self.noise, size=action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _advance(self) -> None:
        self.phase += 1
        self.phase_steps = 0

    def _move(self, state: RobotState, target: np.ndarray, gripper: float) -> np.ndarray:
        delta = np.clip((target - state.tcp_pos) / self.action_scale, -1.0, 1.0)
        return np.append(delta, gripper)

    @abstractmethod
    def _act(self, state: RobotState, objects: dict[str, Pose]) -> np.ndarray: ...


class PickCubeExpert(ScriptedExpert):
    """Hover above the cube, descend, close, lift 12 cm."""

    hover = 0.07
    lift = 0.12

    def _act(self, state, objects):
        cube = objects["cube"].pos
        grasp = np.array([cube[0], cube[1], max(cube[2], PickCubeScene.cube_half)])
        if self.phase == 0:  # above the cube, gripper open
            target = grasp + [0, 0, self.hover]
            if (
                np.linalg.norm(state.tcp_pos[:2] - grasp[:2]) < 0.008
                and abs(state.tcp_pos[2] - target[2]) < 0.02
            ):
                self._advance()
            return self._move(state, target, OPEN)
        if self.phase == 1:  # down around the cube
            if np.linalg.norm(state.tcp_pos - grasp) < 0.006 or self.phase_steps > 15:
                self._advance()
            return self._move(state, grasp, OPEN)
        if self.phase == 2:  # close and let the fingers settle
            if self.phase_steps >= 4:
                self._advance()
            return self._move(state, grasp, CLOSE)
        return self._move(state, grasp + [0, 0, self.lift], CLOSE)


class PegInsertExpert(ScriptedExpert):
    """Align the held peg over the hole, then lower it in."""

    clearance_above = 0.02

    def _act(self, state, objects):
        peg, hole = objects["peg"].pos, objects["hole"].pos
        grip_offset = state.tcp_pos - peg  # where the TCP sits relative to the peg centre
        peg_half_z = PegInsertScene.peg_half[2]
        above = np.array([hole[0], hole[1], PegInsertScene.hole_depth + self.clearance_above + peg_half_z])
        if self.phase == 0:
            target = above + grip_offset
            if np.linalg.norm(peg[:2] - hole[:2]) < 0.002 and abs(peg[2] - above[2]) < 0.01:
                self._advance()
            return self._move(state, target, CLOSE)
        bottom = np.array([hole[0], hole[1], peg_half_z])
        return self._move(state, bottom + grip_offset, CLOSE)


EXPERTS: dict[str, type[ScriptedExpert]] = {"pick_cube": PickCubeExpert, "peg_insert": PegInsertExpert}


def make_expert(
    scene: str, action_scale: float, noise: float = 0.0, seed: int | None = None
) -> ScriptedExpert:
    if scene not in EXPERTS:
        raise ValueError(f"no scripted expert for scene {scene!r}; known: {sorted(EXPERTS)}")
    return EXPERTS[scene](action_scale, noise, seed)
