"""MuJoCo sim twins: the Panda-class arm scene, `SimRobot` (a `robot.Robot`), domain
randomisation and scripted experts. Importing this package selects the GL backend first."""

from sim.rendering import select_gl_backend

select_gl_backend()

from sim.experts import make_expert  # noqa: E402
from sim.randomization import DomainRandomization  # noqa: E402
from sim.robot import SimRobot, SimRobotConfig  # noqa: E402
from sim.scenes import SCENES  # noqa: E402

__all__ = ["SCENES", "DomainRandomization", "SimRobot", "SimRobotConfig", "make_expert"]
