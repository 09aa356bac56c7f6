"""Task definitions: each task is data (a `TaskSpec`) plus a small class that turns robot state
and tracked object poses into success, named reward terms and the task's state features. The
same task runs on a real arm or on its sim twin (`spec.twin`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from rewards import tolerance
from robot import Pose, RobotState, WorkspaceLimits


@dataclass(frozen=True)
class TaskSpec:
    name: str  # short name: "PickCube"
    twin: str  # sim scene of the twin (sim.SCENES)
    max_episode_steps: int
    action_scale: float  # metres of TCP motion per step at |action| = 1
    # Safety constraints on the TCP, reported as info["safety_margin"] (< 0: violated). They sit a
    # little outside the robot's hard workspace clamp, so a violation means something pushed the arm.
    safety_box: WorkspaceLimits
    table_clearance: float  # m, lowest allowed TCP height above the table top (z = 0)
    keep_out: tuple[WorkspaceLimits, ...] = ()
    # Weights of the dense shaping terms (reward_mode="dense").
    dense_weights: dict[str, float] = field(default_factory=dict)
    # The object starts in the closed gripper and must stay there: action[3] is ignored and the
    # gripper held closed, as SERL's peg insertion does, so a policy cannot drop it (measured: an
    # RLPD policy that could command the gripper let the peg go in most failed PegInsert episodes).
    gripper_locked: bool = False


class Task(ABC):
    spec: TaskSpec
    # Extra state features after the proprioception, in state mode: the object poses.
    object_state_dim: int

    @abstractmethod
    def object_state(self, objects: dict[str, Pose]) -> np.ndarray:
        """Privileged object features appended to the state vector in state mode."""

    @abstractmethod
    def success(self, state: RobotState, objects: dict[str, Pose]) -> bool: ...

    @abstractmethod
    def reward_terms(
        self, state: RobotState, objects: dict[str, Pose], gripper_cmd: float
    ) -> dict[str, float]:
        """Named dense-shaping terms in [0, 1] (always logged, summed only in dense mode)."""

    def keep_out_zones(self, objects: dict[str, Pose]) -> tuple[WorkspaceLimits, ...]:
        return self.spec.keep_out

    def safety_margin(self, state: RobotState, objects: dict[str, Pose]) -> float:
        """Signed distance (m) to the nearest safety constraint: workspace box, table, keep-out zones."""
        margins = [
            self.spec.safety_box.signed_distance(state.tcp_pos),
            state.tcp_pos[2] - self.spec.table_clearance,
        ]
        margins += [-zone.signed_distance(state.tcp_pos) for zone in self.keep_out_zones(objects)]
        return float(min(margins))


def pose_features(pose: Pose) -> np.ndarray:
    return np.concatenate([pose.pos, pose.quat])


class PickCube(Task):
    """Grasp the cube and lift it at least 5 cm off the table."""

    spec = TaskSpec(
        name="PickCube",
        twin="pick_cube",
        max_episode_steps=100,
        action_scale=0.03,
        safety_box=WorkspaceLimits((0.24, -0.31, -0.02), (0.76, 0.31, 0.46)),
        table_clearance=0.008,
        dense_weights={"reach": 0.25, "grasp": 0.25, "lift": 0.5},
    )
    object_state_dim = 7
    cube_half = 0.02
    lift_height = 0.05

    def object_state(self, objects):
        return pose_features(objects["cube"])

    def lifted(self, objects) -> float:
        return float(objects["cube"].pos[2] - self.cube_half)

    def success(self, state, objects):
        grasped = np.linalg.norm(state.tcp_pos - objects["cube"].pos) < 0.03
        return bool(grasped and self.lifted(objects) >= self.lift_height)

    def reward_terms(self, state, objects, gripper_cmd):
        distance = float(np.linalg.norm(state.tcp_pos - objects["cube"].pos))
        # Closed on the cube: fingers stopped by it, anywhere between its width and its diagonal
        # (a yawed cube is held corner to corner).
        stopped = 2 * self.cube_half - 0.004 < state.gripper_width < 2 * self.cube_half * np.sqrt(2) + 0.004
        holding = distance < 0.02 and stopped and gripper_cmd > 0
        return {
            "reach": tolerance(distance, 0.1),
            "grasp": float(holding),
            "lift": float(np.clip(self.lifted(objects) / self.lift_height, 0.0, 1.0)) if holding else 0.0,
        }


class PegInsert(Task):
    """Insert the held square peg at least 2.5 cm deep into the hole (3 mm clearance per side)."""

    spec = TaskSpec(
        name="PegInsert",
        twin="peg_insert",
        max_episode_steps=100,
        action_scale=0.02,
        safety_box=WorkspaceLimits((0.24, -0.31, -0.02), (0.76, 0.31, 0.46)),
        table_clearance=0.008,
        dense_weights={"align": 0.3, "depth": 0.7},
        gripper_locked=True,
    )
    object_state_dim = 10
    hole_half = 0.0155
    hole_depth = 0.04
    peg_half_height = 0.04
    insert_depth = 0.025

    def object_state(self, objects):
        return np.concatenate([pose_features(objects["peg"]), objects["hole"].pos])

    def _peg_bottom_depth(self, objects) -> float:
        """How far the peg's bottom face is below the hole's rim (m)."""
        return float(self.hole_depth - (objects["peg"].pos[2] - self.peg_half_height))

    def success(self, state, objects):
        inside = np.all(np.abs(objects["peg"].pos[:2] - objects["hole"].pos[:2]) < self.hole_half)
        return bool(inside and self._peg_bottom_depth(objects) >= self.insert_depth)

    def reward_terms(self, state, objects, gripper_cmd):
        xy_error = float(np.linalg.norm(objects["peg"].pos[:2] - objects["hole"].pos[:2]))
        aligned = xy_error < self.hole_half
        depth = np.clip(self._peg_bottom_depth(objects) / self.insert_depth, 0.0, 1.0) if aligned else 0.0
        return {"align": tolerance(xy_error, 0.05), "depth": float(depth)}

    def keep_out_zones(self, objects):
        # The block around the hole: the TCP (and so the fingers) must stay above its rim.
        x, y, _ = objects["hole"].pos
        reach = self.hole_half + 0.03
        return (
            WorkspaceLimits((x - reach, y - reach, -0.05), (x + reach, y + reach, self.hole_depth + 0.01)),
        )


TASKS: dict[str, type[Task]] = {task.spec.name: task for task in (PickCube, PegInsert)}
