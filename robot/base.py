"""`Robot`: the abstract arm that envs, wrappers and policies drive without knowing whether it is
real hardware or the sim twin. Poses are in the robot base frame, metres and (w, x, y, z) quaternions."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pose:
    """A rigid pose: position (3,) in metres and orientation quaternion (4,) as (w, x, y, z)."""

    pos: np.ndarray
    quat: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "pos", np.array(self.pos, dtype=np.float64).reshape(3)
        )  # copy: never alias sim state
        object.__setattr__(self, "quat", np.array(self.quat, dtype=np.float64).reshape(4))


# The tool pointing straight down (w, x, y, z): the orientation every task holds the TCP in.
TCP_DOWN_QUAT = np.array([0.0, 1.0, 0.0, 0.0])


def rotate_by_quat(vector: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """`vector` (3,) rotated by the unit quaternion `quat` (w, x, y, z): v' = v + 2w(u x v) + 2u x (u x v)."""
    w, u = quat[0], np.asarray(quat[1:], dtype=np.float64)
    cross = np.cross(u, vector)
    return np.asarray(vector, dtype=np.float64) + 2.0 * w * cross + 2.0 * np.cross(u, cross)


@dataclass(frozen=True)
class RobotState:
    """One proprioceptive reading of the arm."""

    tcp_pos: np.ndarray  # (3,) m
    tcp_quat: np.ndarray  # (4,) w, x, y, z
    tcp_linvel: np.ndarray  # (3,) m/s, base frame
    tcp_angvel: np.ndarray  # (3,) rad/s, base frame
    joint_pos: np.ndarray  # (n_joints,) rad
    joint_vel: np.ndarray  # (n_joints,) rad/s
    gripper_width: float  # m, distance between the finger pads
    timestamp: float  # s, robot clock (sim time for the twin)
    wrench: np.ndarray | None = None  # (6,) force (N) then torque (Nm) at the TCP, if the arm senses it


class Robot(ABC):
    """An arm with a parallel-jaw gripper and cameras, driven by end-effector targets.

    Usage is a context manager::

        with SimRobot(config) as robot:
            robot.reset()
            robot.command(Pose(pos, quat), gripper=0.0)
            robot.advance()
            state, frames = robot.get_state(), robot.get_frames()

    `command` only sets the target; `advance` lets one control period pass with it held (the sim
    twin integrates physics, a real arm sleeps until the next tick). Implementations enforce their
    hard limits in `command`, whatever the caller sends.
    """

    control_hz: float = 10.0
    camera_names: tuple[str, ...] = ()

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @abstractmethod
    def connect(self) -> None:
        """Open connections to the arm, gripper and cameras."""

    @abstractmethod
    def close(self) -> None:
        """Stop the arm and release every resource; safe to call twice."""

    @abstractmethod
    def get_state(self) -> RobotState:
        """The latest proprioceptive state."""

    @abstractmethod
    def command(self, ee_target: Pose, gripper: float) -> None:
        """Set the end-effector target and the gripper closure (0 = fully open, 1 = fully closed).

        Raises ValueError for non-finite input; clamps targets into the workspace limits."""

    @abstractmethod
    def advance(self) -> None:
        """Let one control period (1 / control_hz) pass with the last command held."""

    @abstractmethod
    def reset(self, joint_positions: np.ndarray | None = None, *, seed: int | None = None) -> None:
        """Move to `joint_positions` (default: the home posture) with the gripper open.

        The sim twin also re-samples its scene from `seed`; real arms ignore the seed."""

    @abstractmethod
    def stop(self) -> None:
        """Hold the current pose at once (soft stop)."""

    @abstractmethod
    def get_frames(self) -> dict[str, np.ndarray]:
        """The latest frame of every camera: {name: uint8 (H, W, 3) RGB}."""

    def get_object_poses(self) -> dict[str, Pose]:
        """Poses of tracked task objects. The sim twin knows them exactly; a real arm knows
        them only if a tracker is attached, and returns {} otherwise."""
        return {}
