"""Per-task sim twin scenes: the objects each task adds to the arm scene, how a reset places them
(seeded), and which poses are tracked. A scene is data plus a small class; the arm is shared."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import mujoco
import numpy as np

from robot import TCP_DOWN_QUAT, Pose
from sim.kinematics import ARM_JOINTS, solve_ik

ARM_SCENE_XML = Path(__file__).parent / "assets" / "panda_scene.xml"

# Ready posture: TCP at (0.45, 0, 0.25) pointing down, fingers opening along the base y axis.
HOME_QPOS = np.array([0.0, -0.1849, 0.0, -2.4968, 0.0, 2.3119, 0.7854])
HOME_TCP_POS = np.array([0.45, 0.0, 0.25])
# TCP pointing straight down (180 degrees about x): the orientation every task holds.
GRIPPER_MAX_WIDTH = 0.08
HOLE_RGBA = "0.2 0.45 0.8 1"


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


class Scene(ABC):
    """A task's objects in the twin. Subclasses give the MJCF snippets and the reset logic."""

    name: str
    objects_xml: str = ""
    assets_xml: str = ""
    # Geoms whose colour and bodies whose mass domain randomisation may change.
    colour_geoms: tuple[str, ...] = ()
    mass_bodies: tuple[str, ...] = ()
    friction_geoms: tuple[str, ...] = ()
    tracked_objects: tuple[str, ...] = ()

    def xml(self, timestep: float) -> str:
        return (
            ARM_SCENE_XML.read_text()
            .replace("{TASK_NAME}", self.name)
            .replace("{TIMESTEP}", repr(timestep))
            .replace("{TASK_ASSETS}", self.assets_xml)
            .replace("{TASK_OBJECTS}", self.objects_xml)
        )

    def initial_gripper(self) -> float:
        """Gripper closure (0 open .. 1 closed) commanded right after a reset."""
        return 0.0

    @abstractmethod
    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
        """Place the arm (qpos of the 7 joints) and the objects for a new episode."""

    def object_poses(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict[str, Pose]:
        return {name: Pose(data.body(name).xpos, data.body(name).xquat) for name in self.tracked_objects}


def set_arm_qpos(model: mujoco.MjModel, data: mujoco.MjData, qpos: np.ndarray) -> None:
    for name, value in zip(ARM_JOINTS, qpos, strict=True):
        data.qpos[model.jnt_qposadr[model.joint(name).id]] = value


def place_tcp(model: mujoco.MjModel, data: mujoco.MjData, pos: np.ndarray) -> None:
    """Put the arm where the TCP is at `pos`, pointing down, solving IK from the ready posture."""
    set_arm_qpos(model, data, HOME_QPOS)
    set_arm_qpos(model, data, solve_ik(model, data, "tcp", pos, TCP_DOWN_QUAT))


def set_free_body_pose(model: mujoco.MjModel, data: mujoco.MjData, body: str, pos, quat) -> None:
    adr = model.jnt_qposadr[model.body(body).jntadr[0]]
    data.qpos[adr : adr + 3] = pos
    data.qpos[adr + 3 : adr + 7] = quat


class PickCubeScene(Scene):
    """A 4 cm cube on the table in front of the arm, random position and yaw."""

    name = "pick_cube"
    cube_half = 0.02
    spawn_lo = np.array([0.38, -0.12])
    spawn_hi = np.array([0.58, 0.12])
    objects_xml = """
    <body name="cube" pos="0.5 0 0.02">
      <freejoint name="cube"/>
      <geom name="cube" class="world" type="box" size="0.02 0.02 0.02" mass="0.06"
            rgba="0.85 0.15 0.12 1" friction="0.9 0.005 0.0001"/>
    </body>"""
    colour_geoms = ("cube", "table")
    mass_bodies = ("cube",)
    friction_geoms = ("cube",)
    tracked_objects = ("cube",)

    start_jitter = 0.03  # m, per axis around the ready pose

    def reset(self, model, data, rng):
        start = HOME_TCP_POS + rng.uniform(-self.start_jitter, self.start_jitter, size=3)
        place_tcp(model, data, start)
        xy = rng.uniform(self.spawn_lo, self.spawn_hi)
        set_free_body_pose(
            model, data, "cube", [xy[0], xy[1], self.cube_half], yaw_quat(rng.uniform(-0.6, 0.6))
        )


class PegInsertScene(Scene):
    """A 2.5 cm square peg, held in the gripper at the start, to insert into a 3.1 cm square hole
    (3 mm clearance per side, 4 cm deep) in a block fixed on the table at a random position."""

    name = "peg_insert"
    peg_half = np.array([0.0125, 0.0125, 0.04])
    hole_half = 0.0155
    hole_depth = 0.04
    wall = 0.02
    # The peg sits this far below the TCP in the grasp (its top 2 cm above the pad centres).
    peg_below_tcp = 0.02
    hole_lo = np.array([0.45, -0.10])
    hole_hi = np.array([0.56, 0.10])
    start_offset = 0.06  # the TCP starts within this xy distance of a point above the hole
    start_height = 0.17

    def __init__(self) -> None:
        h, w, d = self.hole_half, self.wall, self.hole_depth / 2
        c = h + w / 2  # wall centre distance from the hole axis
        long = h + w  # walls overlap at the corners
        walls = [
            (f"{c} 0 {d}", f"{w / 2} {long} {d}"),
            (f"{-c} 0 {d}", f"{w / 2} {long} {d}"),
            (f"0 {c} {d}", f"{h} {w / 2} {d}"),
            (f"0 {-c} {d}", f"{h} {w / 2} {d}"),
        ]
        wall_xml = "\n".join(
            f'<geom name="hole_wall{i}" class="world" type="box" pos="{pos}"'
            f' size="{size}" rgba="{HOLE_RGBA}"/>'
            for i, (pos, size) in enumerate(walls)
        )
        px, py, pz = self.peg_half
        self.objects_xml = f"""
    <body name="hole" pos="0.5 0 0">
      {wall_xml}
      <site name="hole_bottom" pos="0 0 0" size="0.003" rgba="1 1 0 0" group="4"/>
    </body>
    <body name="peg" pos="0.5 0 0.2">
      <freejoint name="peg"/>
      <geom name="peg" class="world" type="box" size="{px} {py} {pz}" mass="0.05"
            rgba="0.9 0.75 0.1 1" friction="0.8 0.005 0.0001"/>
    </body>"""

    colour_geoms = ("peg", "table")
    mass_bodies = ("peg",)
    friction_geoms = ("peg",)
    tracked_objects = ("peg", "hole")

    def initial_gripper(self) -> float:
        return 1.0

    def reset(self, model, data, rng):
        hole_xy = rng.uniform(self.hole_lo, self.hole_hi)
        # The block is a static body: moving it is a model change, re-read at the next kinematics pass.
        model.body("hole").pos[:] = [hole_xy[0], hole_xy[1], 0.0]
        model.body("hole").quat[:] = yaw_quat(rng.uniform(-0.05, 0.05))
        start = np.append(hole_xy + rng.uniform(-self.start_offset, self.start_offset, 2), self.start_height)
        place_tcp(model, data, start)
        # Peg between the pads, fingers already closed onto its 2.5 cm width.
        set_free_body_pose(model, data, "peg", start - [0, 0, self.peg_below_tcp], [1.0, 0.0, 0.0, 0.0])
        for finger in ("finger_left", "finger_right"):
            data.qpos[model.jnt_qposadr[model.joint(finger).id]] = self.peg_half[0] + 1e-4


SCENES: dict[str, type[Scene]] = {scene.name: scene for scene in (PickCubeScene, PegInsertScene)}
