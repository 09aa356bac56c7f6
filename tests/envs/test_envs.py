import dataclasses

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import TASK_IDS, make_env, resolve_task_id
from sim import make_expert

ALL = [(env_id, mode) for env_id in TASK_IDS.values() for mode in ("state", "pixels")]


def make(env_id, obs_mode, **kwargs):
    return gym.make(env_id, obs_mode=obs_mode, image_size=kwargs.pop("image_size", 64), **kwargs)


def flat(obs):
    parts = [obs["state"].ravel()]
    parts += [frame.ravel().astype(np.float64) for frame in obs.get("images", {}).values()]
    return np.concatenate(parts)


@pytest.mark.parametrize("env_id, obs_mode", ALL)
def test_every_task_passes_the_gymnasium_checker(env_id, obs_mode):
    env = make(env_id, obs_mode, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (4,) and env.action_space.dtype == np.float32
    if obs_mode == "pixels":
        assert set(obs["images"]) == {"front", "wrist"}
        assert obs["images"]["front"].shape == (64, 64, 3) and obs["images"]["front"].dtype == np.uint8
    env.close()


@pytest.mark.parametrize("env_id, obs_mode", ALL)
def test_deterministic_under_seed_and_finite(env_id, obs_mode):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(25, 4)).astype(np.float32)
    runs = []
    for _ in range(2):
        env = make(env_id, obs_mode)
        obs, info = env.reset(seed=123)
        trace = [flat(obs)]
        for action in actions:
            obs, reward, terminated, truncated, info = env.step(action)
            trace.append(
                np.append(flat(obs), [reward, info["safety_margin"], *info["reward_terms"].values()])
            )
            if terminated or truncated:
                break
        env.close()
        runs.append(trace)
    assert len(runs[0]) == len(runs[1])
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)
        assert np.all(np.isfinite(a))


def test_state_layout_and_object_pose():
    env = make_env("PickCube")
    obs, _ = env.reset(seed=5)
    robot = env.unwrapped.robot
    state, cube = robot.get_state(), robot.get_object_poses()["cube"]
    assert obs["state"].shape == (14,)
    np.testing.assert_allclose(obs["state"][:3], state.tcp_pos, rtol=1e-6)
    assert obs["state"][6] == pytest.approx(state.gripper_width, rel=1e-6)
    np.testing.assert_allclose(obs["state"][7:10], cube.pos, rtol=1e-6)
    pixels = make_env("PegInsert", obs_mode="pixels", image_size=32)
    assert pixels.observation_space["state"].shape == (7,)  # proprioception only
    assert make_env("PegInsert").observation_space["state"].shape == (17,)


def test_frames_show_the_scene():
    env = make_env("PickCube", obs_mode="pixels", image_size=96)
    obs, _ = env.reset(seed=0)
    robot = env.unwrapped.robot
    front, wrist = obs["images"]["front"].astype(int), obs["images"]["wrist"].astype(int)
    assert np.abs(front - wrist).mean() > 10  # two different viewpoints
    # Move the cube 12 cm sideways: the front camera must see it.
    adr = robot.model.jnt_qposadr[robot.model.joint("cube").id]
    robot.data.qpos[adr + 1] += 0.12
    mujoco.mj_forward(robot.model, robot.data)
    moved = robot.get_frames()["front"].astype(int)
    changed = np.any(np.abs(moved - front) > 30, axis=-1).sum()
    assert changed > 20  # the cube covers dozens of pixels at 96x96
    assert np.any(np.abs(moved - front) > 0)


def test_task_name_resolution():
    assert resolve_task_id("PickCube") == "realrl/PickCube-v0"
    assert resolve_task_id("realrl/PegInsert-v0") == "realrl/PegInsert-v0"
    with pytest.raises(ValueError, match=r"realrl/PickCube-v0.*realrl/PegInsert-v0"):
        resolve_task_id("PickSphere")


def test_bad_actions_never_reach_the_robot():
    env = make_env("PickCube")
    env.reset(seed=0)
    robot = env.unwrapped.robot
    target_before, time_before = robot.data.mocap_pos[0].copy(), robot.data.time
    for bad in ([np.nan, 0, 0, 0], [0, np.inf, 0, 0], [0, 0, 0], np.zeros((1, 4))):
        with pytest.raises(ValueError):
            env.step(np.array(bad, dtype=np.float32))
    np.testing.assert_array_equal(robot.data.mocap_pos[0], target_before)
    assert robot.data.time == time_before


def test_out_of_range_actions_are_clipped():
    results = []
    for action in ([5.0, -3.0, 2.0, 9.0], [1.0, -1.0, 1.0, 1.0]):
        env = make_env("PickCube")
        env.reset(seed=0)
        obs, *_ = env.step(np.array(action, dtype=np.float32))
        results.append(obs["state"])
    np.testing.assert_array_equal(*results)


def test_action_scale_moves_the_target_by_the_task_scale():
    env = make_env("PickCube")
    env.reset(seed=0)
    robot = env.unwrapped.robot
    start = robot.get_state().tcp_pos
    env.step(np.array([1.0, 0.0, -0.5, -1.0], dtype=np.float32))
    np.testing.assert_allclose(robot.data.mocap_pos[0], start + [0.03, 0.0, -0.015], atol=1e-9)


def test_time_limit_truncates_without_terminating():
    env = make_env("PickCube")
    env.reset(seed=0)
    for step in range(1, 101):
        _, reward, terminated, truncated, info = env.step(np.zeros(4, dtype=np.float32))
        assert not terminated and reward == 0.0
        assert truncated == (step == 100)


@pytest.mark.parametrize("task", ["PickCube", "PegInsert"])
def test_success_terminates_with_sparse_reward(task):
    env = make_env(task)
    env.reset(seed=3)
    u = env.unwrapped
    expert = make_expert(u.task.spec.twin, u.task.spec.action_scale, seed=3)
    rewards = []
    while True:
        action = expert.act(u.robot.get_state(), u.robot.get_object_poses())
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        if terminated or truncated:
            break
    assert terminated and not truncated and info["success"]
    assert rewards[-1] == 1.0 and sum(rewards) == 1.0
    assert info["intervened"] is False


def test_safety_margin_matches_hand_computation():
    env = make_env("PickCube")
    env.reset(seed=0)
    u = env.unwrapped
    robot = u.robot
    robot.reset(seed=0)
    x, y, z = robot.get_state().tcp_pos
    # Safety box (0.24, -0.31, -0.02)..(0.76, 0.31, 0.46) and table clearance 0.008.
    expected = min(x - 0.24, 0.76 - x, y + 0.31, 0.31 - y, z + 0.02, 0.46 - z, z - 0.008)
    assert u.task.safety_margin(robot.get_state(), robot.get_object_poses()) == pytest.approx(expected)


def test_peg_keep_out_zone_is_violated_by_a_low_tcp():
    task = envs.tasks.PegInsert()
    env = make_env("PegInsert")
    env.reset(seed=0)
    robot = env.unwrapped.robot
    objects = robot.get_object_poses()
    hole = objects["hole"].pos
    state = robot.get_state()
    # TCP 5 mm above the hole rim (4 cm), centred: 5 mm inside the keep-out box (rim + 1 cm).
    low = dataclasses.replace(state, tcp_pos=np.array([hole[0], hole[1], 0.045]))
    assert task.safety_margin(low, objects) == pytest.approx(-0.005)


def test_dense_reward_is_weighted_sum_of_terms():
    env = make_env("PickCube", reward_mode="dense")
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.zeros(4, dtype=np.float32))
    terms = info["reward_terms"]
    assert reward == pytest.approx(0.25 * terms["reach"] + 0.25 * terms["grasp"] + 0.5 * terms["lift"])
    assert 0.0 < terms["reach"] < 1.0


def test_invalid_options_are_clear_errors():
    with pytest.raises(ValueError, match="obs_mode"):
        make_env("PickCube", obs_mode="depth")
    with pytest.raises(ValueError, match="reward_mode"):
        make_env("PickCube", reward_mode="shaped")


def test_peg_insert_holds_the_peg_whatever_the_gripper_command():
    env = make_env("PegInsert")
    obs, _ = env.reset(seed=3)
    peg_z = obs["state"][9]
    for _ in range(5):  # "open" at full strength while standing still
        obs, *_ = env.step(np.array([0, 0, 0, -1], dtype=np.float32))
    width = obs["state"][6]
    assert abs(obs["state"][9] - peg_z) < 0.005  # still in the hand, not dropped
    assert width < 0.03  # the fingers stay closed on the 2.5 cm peg
    opened = make_env("PickCube")
    obs, _ = opened.reset(seed=3)
    for _ in range(5):
        obs, *_ = opened.step(np.array([0, 0, 0, -1], dtype=np.float32))
    assert obs["state"][6] > 0.07  # PickCube's gripper does open (8 cm stroke)


def test_importing_envs_loads_no_mujoco():
    """A real-arm env must not need MuJoCo installed: only building a twin imports sim."""
    import subprocess
    import sys

    code = "import sys, envs; print(sorted(m for m in sys.modules if m == 'mujoco' or m.startswith('sim')))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"
