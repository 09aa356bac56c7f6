"""Gymnasium tasks over any `robot.Robot` (real arm or sim twin), their wrappers and registry.
Importing this package registers `realrl/PickCube-v0` and `realrl/PegInsert-v0`."""

from envs.registry import TASK_IDS, make_env, make_gymnasium_env, register_tasks, resolve_task_id
from envs.robot_env import RobotEnv
from envs.wrappers import (
    DiscreteGripper,
    EpisodeStats,
    GripperTogglePenalty,
    GymnasiumAdapter,
    ImageTransform,
    RelativeFrameActions,
    VideoRecorder,
)

register_tasks()

__all__ = [
    "TASK_IDS",
    "DiscreteGripper",
    "EpisodeStats",
    "GripperTogglePenalty",
    "GymnasiumAdapter",
    "ImageTransform",
    "RelativeFrameActions",
    "RobotEnv",
    "VideoRecorder",
    "make_env",
    "make_gymnasium_env",
    "register_tasks",
    "resolve_task_id",
]
