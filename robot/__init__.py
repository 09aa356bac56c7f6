"""The robot interface every arm implements (real drivers and the MuJoCo sim twin alike),
plus the hard limits that sit below any policy."""

from robot.base import Pose, Robot, RobotState
from robot.limits import WorkspaceLimits, validate_command

__all__ = ["Pose", "Robot", "RobotState", "WorkspaceLimits", "validate_command"]
