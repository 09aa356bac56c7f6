"""The robot interface every arm implements (real drivers and the MuJoCo sim twin alike),
plus the hard limits that sit below any policy."""

from robot.base import TCP_DOWN_QUAT, Pose, Robot, RobotState, rotate_by_quat
from robot.limits import WorkspaceLimits, validate_command

__all__ = [
    "TCP_DOWN_QUAT",
    "Pose",
    "Robot",
    "RobotState",
    "WorkspaceLimits",
    "rotate_by_quat",
    "validate_command",
]
