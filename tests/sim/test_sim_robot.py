import mujoco
import numpy as np
import pytest

from robot import TCP_DOWN_QUAT, Pose
from sim import DomainRandomization, SimRobot, SimRobotConfig
from sim.kinematics import ARM_JOINTS

# Franka Emika's published joint limits (rad).
PANDA_LIMITS = [
    (-2.8973, 2.8973),
    (-1.7628, 1.7628),
    (-2.8973, 2.8973),
    (-3.0718, -0.0698),
    (-2.8973, 2.8973),
    (-0.0175, 3.7525),
    (-2.8973, 2.8973),
]


@pytest.fixture(scope="module")
def robot():
    with SimRobot(SimRobotConfig(scene="pick_cube")) as r:
        yield r


def test_kinematics_match_published_panda(robot):
    m, d = robot.model, mujoco.MjData(robot.model)
    mujoco.mj_forward(m, d)
    # All joints at zero: TCP straight above the base, 0.088 forward, at
    # d1 + d3 + d5 - flange - tcp = 0.333 + 0.316 + 0.384 - 0.107 - 0.1034.
    np.testing.assert_allclose(d.site("tcp").xpos, [0.088, 0.0, 0.8226], atol=1e-6)
    np.testing.assert_allclose([m.joint(j).range for j in ARM_JOINTS], PANDA_LIMITS)


def test_physics_and_control_rates(robot):
    assert robot.model.opt.timestep == pytest.approx(1 / 500)
    robot.reset(seed=0)
    t0 = robot.get_state().timestamp
    robot.advance()
    assert robot.get_state().timestamp - t0 == pytest.approx(0.1)


@pytest.mark.parametrize(
    "target", [(0.55, 0.10, 0.15), (0.40, -0.15, 0.05), (0.62, 0.20, 0.32), (0.30, 0.0, 0.40)]
)
def test_controller_reaches_target_within_5mm_in_2s(robot, target):
    robot.reset(seed=1)
    target = np.array(target)
    robot.command(Pose(target, TCP_DOWN_QUAT), gripper=0.0)
    limits = np.array(PANDA_LIMITS)
    for _ in range(20):  # 20 control steps at 10 Hz = 2 s of sim time
        robot.advance()
        q = robot.get_state().joint_pos
        assert np.all(q > limits[:, 0]) and np.all(q < limits[:, 1]), q
    state = robot.get_state()
    assert np.linalg.norm(state.tcp_pos - target) < 0.005
    # Orientation held: TCP z axis still points down within 2 degrees.
    assert abs(abs(state.tcp_quat[1]) - 1.0) < 1 - np.cos(np.radians(1))


def test_joint_limits_hold_under_extreme_targets(robot):
    rng = np.random.default_rng(0)
    limits = np.array(PANDA_LIMITS)
    robot.reset(seed=2)
    for _ in range(200):
        # Far outside the workspace: the clamp and the controller must keep the joints in range.
        robot.command(Pose(rng.uniform(-2, 2, size=3), TCP_DOWN_QUAT), gripper=rng.uniform())
        robot.advance()
        q = robot.get_state().joint_pos
        assert np.all(q >= limits[:, 0]) and np.all(q <= limits[:, 1]), q


def test_gravity_compensated_hold(robot):
    robot.reset(seed=3)
    start = robot.get_state().tcp_pos
    for _ in range(10):
        robot.advance()
    assert np.linalg.norm(robot.get_state().tcp_pos - start) < 0.001


def test_targets_clamped_into_workspace(robot):
    robot.reset(seed=0)
    robot.command(Pose([2.0, -1.0, -0.5], TCP_DOWN_QUAT), gripper=0.0)
    np.testing.assert_allclose(robot.data.mocap_pos[0], [0.75, -0.3, 0.015])


def test_non_finite_command_never_reaches_the_arm(robot):
    robot.reset(seed=0)
    before = robot.data.mocap_pos[0].copy(), robot.data.ctrl.copy()
    with pytest.raises(ValueError):
        robot.command(Pose([np.nan, 0.0, 0.2], TCP_DOWN_QUAT), gripper=0.0)
    with pytest.raises(ValueError):
        robot.command(Pose([0.5, 0.0, 0.2], TCP_DOWN_QUAT), gripper=np.inf)
    np.testing.assert_array_equal(robot.data.mocap_pos[0], before[0])
    np.testing.assert_array_equal(robot.data.ctrl, before[1])


def test_gripper_opens_and_closes(robot):
    robot.reset(seed=0)
    robot.command(Pose(robot.get_state().tcp_pos, TCP_DOWN_QUAT), gripper=0.0)
    for _ in range(5):
        robot.advance()
    assert robot.get_state().gripper_width == pytest.approx(0.08, abs=0.002)
    robot.command(Pose(robot.get_state().tcp_pos, TCP_DOWN_QUAT), gripper=1.0)
    for _ in range(5):
        robot.advance()
    assert robot.get_state().gripper_width < 0.002


def test_reset_is_seeded(robot):
    robot.reset(seed=7)
    a = robot.get_object_poses()["cube"].pos
    robot.reset(seed=7)
    b = robot.get_object_poses()["cube"].pos
    robot.reset(seed=8)
    c = robot.get_object_poses()["cube"].pos
    np.testing.assert_array_equal(a, b)
    assert np.linalg.norm(a[:2] - c[:2]) > 1e-3


def test_domain_randomization_is_seeded_and_does_not_drift():
    robot = SimRobot(SimRobotConfig(scene="pick_cube", randomization=DomainRandomization.full()))
    m = robot.model
    cube_geom, cube_body = m.geom("cube").id, m.body("cube").id
    nominal_mass = robot._randomizer.nominal["body_mass"][cube_body]
    draws = []
    for seed in (1, 2, 1):
        robot.reset(seed=seed)
        draws.append((m.geom_rgba[cube_geom].copy(), float(m.body_mass[cube_body]), m.cam_pos[0].copy()))
    np.testing.assert_array_equal(draws[0][0], draws[2][0])
    assert draws[0][1] == draws[2][1]
    assert not np.allclose(draws[0][0], draws[1][0])
    # Mass scale stays within the configured range of the nominal value every time.
    for _, mass, _ in draws:
        assert 0.5 * nominal_mass <= mass <= 2.0 * nominal_mass
    # Camera jitter within 1 cm per axis of the nominal position.
    for _, _, cam_pos in draws:
        assert np.all(np.abs(cam_pos - robot._randomizer.nominal["cam_pos"][0]) <= 0.01 + 1e-12)


def test_unknown_scene_is_a_clear_error():
    with pytest.raises(ValueError, match="pick_cube"):
        SimRobot(SimRobotConfig(scene="nope"))
