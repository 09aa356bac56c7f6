"""`SimRobot`: the MuJoCo twin of a Panda-class arm behind the `robot.Robot` interface.

Control mirrors a real Franka running Cartesian impedance (as SERL does): a spring-damper pulls
the TCP towards the commanded pose. The spring lives in MuJoCo actuators (site transmission with
a reference site on a mocap target), so it is evaluated in C at every physics step; gravity is
compensated per body; a null-space torque pulls the elbow towards the home posture without
moving the TCP. Physics runs at `physics_hz`, commands arrive at `control_hz`."""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from robot import Pose, Robot, RobotState, WorkspaceLimits, validate_command
from sim.kinematics import ARM_JOINTS, site_quat
from sim.randomization import DomainRandomization, Randomizer
from sim.rendering import RenderingUnavailable, missing_backend_message, preload_llvm_users
from sim.scenes import GRIPPER_MAX_WIDTH, HOME_QPOS, SCENES, Scene

IMPEDANCE_ACTUATORS = ("imp_x", "imp_y", "imp_z", "imp_rx", "imp_ry", "imp_rz")


@dataclass(frozen=True)
class SimRobotConfig:
    scene: str = "pick_cube"  # one of sim.SCENES
    control_hz: float = 10.0  # policy / command rate
    physics_hz: float = 500.0  # MuJoCo integration rate
    image_size: int = 128  # square camera frames
    cameras: tuple[str, ...] = ("front", "wrist")
    translational_stiffness: float = 1500.0  # N/m
    rotational_stiffness: float = 60.0  # Nm/rad
    # Damping = 2 * ratio * sqrt(stiffness * effective inertia) of a Panda at the TCP.
    damping_ratio: float = 1.0
    effective_mass: float = 3.0  # kg
    effective_inertia: float = 0.05  # kg m^2
    max_force: float = 60.0  # N, saturation of the Cartesian spring
    max_torque: float = 10.0  # Nm
    nullspace_stiffness: float = 10.0  # Nm/rad towards HOME_QPOS
    nullspace_hz: float = 50.0  # how often the null-space torque is recomputed
    settle_s: float = 0.3  # physics time after a reset for objects to come to rest
    # Hard limit on TCP targets (base frame, m); the table top is z = 0.
    workspace_lo: tuple[float, float, float] = (0.25, -0.3, 0.015)
    workspace_hi: tuple[float, float, float] = (0.75, 0.3, 0.45)
    randomization: DomainRandomization = field(default_factory=DomainRandomization)


class SimRobot(Robot):
    def __init__(self, config: SimRobotConfig | None = None) -> None:
        self.config = config = config or SimRobotConfig()
        if config.scene not in SCENES:
            raise ValueError(f"unknown sim scene {config.scene!r}; known: {sorted(SCENES)}")
        substeps = config.physics_hz / config.control_hz
        if config.physics_hz < 500 or abs(substeps - round(substeps)) > 1e-9:
            raise ValueError("physics_hz must be >= 500 and a multiple of control_hz")
        self.scene: Scene = SCENES[config.scene]()
        self.model = mujoco.MjModel.from_xml_string(self.scene.xml(1.0 / config.physics_hz))
        self.data = mujoco.MjData(self.model)
        self.control_hz = config.control_hz
        self.camera_names = tuple(config.cameras)
        self.limits = WorkspaceLimits(config.workspace_lo, config.workspace_hi)
        self._substeps = round(substeps)
        self._nullspace_every = max(1, round(config.physics_hz / config.nullspace_hz))
        self._randomizer = Randomizer(self.model, config.randomization, self.scene)
        self._renderer: mujoco.Renderer | None = None
        self._index_model()
        self._set_impedance_gains()

    # -- setup -------------------------------------------------------------------------------
    def _index_model(self) -> None:
        m = self.model
        self._tcp = m.site("tcp").id
        self._target_mocap = m.body("ee_target").mocapid[0]
        self._arm_qpos = np.array([m.jnt_qposadr[m.joint(j).id] for j in ARM_JOINTS])
        self._arm_dofs = np.array([m.jnt_dofadr[m.joint(j).id] for j in ARM_JOINTS])
        self._finger_qpos = np.array([m.jnt_qposadr[m.joint(f).id] for f in ("finger_left", "finger_right")])
        self._gripper_actuator = m.actuator("gripper").id
        self._force_adr = m.sensor_adr[m.sensor("wrist_force").id]
        self._torque_adr = m.sensor_adr[m.sensor("wrist_torque").id]
        self._jac = np.zeros((6, m.nv))

    def _set_impedance_gains(self) -> None:
        c = self.config
        for name in IMPEDANCE_ACTUATORS:
            rotational = name.startswith("imp_r")
            stiffness = c.rotational_stiffness if rotational else c.translational_stiffness
            inertia = c.effective_inertia if rotational else c.effective_mass
            limit = c.max_torque if rotational else c.max_force
            a = self.model.actuator(name).id
            # force = gain * ctrl + bias: ctrl stays 0, so force = -K * offset - D * offset_velocity.
            self.model.actuator_gainprm[a, 0] = stiffness
            self.model.actuator_biasprm[a, :3] = [
                0.0,
                -stiffness,
                -2 * c.damping_ratio * np.sqrt(stiffness * inertia),
            ]
            self.model.actuator_forcelimited[a] = 1
            self.model.actuator_forcerange[a] = [-limit, limit]

    # -- Robot interface ---------------------------------------------------------------------
    def connect(self) -> None:
        """Nothing to open: the model is loaded in the constructor."""

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def reset(self, joint_positions: np.ndarray | None = None, *, seed: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        self._randomizer.apply(rng)
        self.scene.reset(m, d, rng)
        if joint_positions is not None:
            d.qpos[self._arm_qpos] = np.asarray(joint_positions, dtype=np.float64)
        mujoco.mj_forward(m, d)
        self._hold_current_pose()
        self.command_gripper(self.scene.initial_gripper())
        for _ in range(max(1, round(self.config.settle_s * self.config.physics_hz / self._nullspace_every))):
            self._step_chunk(self._nullspace_every)

    def get_state(self) -> RobotState:
        d = self.data
        velocity = np.empty(6)
        mujoco.mj_objectVelocity(self.model, d, mujoco.mjtObj.mjOBJ_SITE, self._tcp, velocity, 0)
        return RobotState(
            tcp_pos=d.site_xpos[self._tcp].copy(),
            tcp_quat=site_quat(d, self._tcp),
            tcp_linvel=velocity[3:].copy(),
            tcp_angvel=velocity[:3].copy(),
            joint_pos=d.qpos[self._arm_qpos].copy(),
            joint_vel=d.qvel[self._arm_dofs].copy(),
            gripper_width=float(d.qpos[self._finger_qpos].sum()),
            timestamp=float(d.time),
            wrench=np.concatenate(
                [
                    d.sensordata[self._force_adr : self._force_adr + 3],
                    d.sensordata[self._torque_adr : self._torque_adr + 3],
                ]
            ),
        )

    def command(self, ee_target: Pose, gripper: float) -> None:
        validate_command(ee_target.pos, ee_target.quat, gripper)
        self.data.mocap_pos[self._target_mocap] = self.limits.clamp(ee_target.pos)
        self.data.mocap_quat[self._target_mocap] = ee_target.quat / np.linalg.norm(ee_target.quat)
        self.command_gripper(gripper)

    def command_gripper(self, closure: float) -> None:
        closure = float(np.clip(closure, 0.0, 1.0))
        self.data.ctrl[self._gripper_actuator] = (1.0 - closure) * GRIPPER_MAX_WIDTH

    def advance(self) -> None:
        for _ in range(self._substeps // self._nullspace_every):
            self._step_chunk(self._nullspace_every)
        remainder = self._substeps % self._nullspace_every
        if remainder:
            self._step_chunk(remainder)

    def stop(self) -> None:
        self._hold_current_pose()

    def get_frames(self) -> dict[str, np.ndarray]:
        renderer = self._get_renderer()
        frames = {}
        for name in self.camera_names:
            renderer.update_scene(self.data, camera=name)
            frames[name] = renderer.render()
        return frames

    def get_object_poses(self) -> dict[str, Pose]:
        return self.scene.object_poses(self.model, self.data)

    # -- internals ---------------------------------------------------------------------------
    def _hold_current_pose(self) -> None:
        self.data.mocap_pos[self._target_mocap] = self.data.site_xpos[self._tcp]
        self.data.mocap_quat[self._target_mocap] = site_quat(self.data, self._tcp)

    def _step_chunk(self, n: int) -> None:
        """Refresh the null-space torque, then integrate n physics steps with it held."""
        self.data.qfrc_applied[self._arm_dofs] = self._nullspace_torque()
        mujoco.mj_step(self.model, self.data, nstep=n)

    def _nullspace_torque(self) -> np.ndarray:
        """tau = (I - J^T J^T+) (k (q_home - q) - 2 sqrt(k) qdot): posture control that exerts no
        force at the TCP (franka_ros' Cartesian impedance controller does the same)."""
        d, k = self.data, self.config.nullspace_stiffness
        mujoco.mj_jacSite(self.model, d, self._jac[:3], self._jac[3:], self._tcp)
        jac = self._jac[:, self._arm_dofs]
        q, qdot = d.qpos[self._arm_qpos], d.qvel[self._arm_dofs]
        posture = k * (HOME_QPOS - q) - 2.0 * np.sqrt(k) * qdot
        # J^T+ = (J J^T)^-1 J; a tiny ridge keeps the solve finite at singular poses.
        return posture - jac.T @ np.linalg.solve(jac @ jac.T + 1e-8 * np.eye(6), jac @ posture)

    def _get_renderer(self) -> mujoco.Renderer:
        if self._renderer is None:
            size = self.config.image_size
            preload_llvm_users()
            try:
                self._renderer = mujoco.Renderer(self.model, size, size)
            except Exception as error:  # mujoco raises plain Exceptions for GL failures
                raise RenderingUnavailable(missing_backend_message(error)) from error
            # Effects that cost render time (software GL especially) and add nothing a policy needs.
            for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX", "mjRND_HAZE"):
                self._renderer.scene.flags[getattr(mujoco.mjtRndFlag, flag)] = 0
        return self._renderer
