"""Tests of envs.wrappers against hand-computed numbers: a scripted fixture env for exact
statistics, and the PickCube sim twin (64 px images, short episodes) for the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.robot_env import proprioception
from envs.wrappers import (
    EpisodeStats,
    GripperTogglePenalty,
    ImageTransform,
    RelativeFrameActions,
    VideoRecorder,
    tile_frames,
    tool_to_base_action,
)
from sim import make_expert

IMAGE_SIZE = 64
TCP_DOWN = np.array([0.0, 1.0, 0.0, 0.0])  # 180 deg about x: tool z points down


class ScriptedInfoEnv(gym.Env):
    """Replays a fixed list of (reward, info) steps and terminates on the last one."""

    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)

    def __init__(self, steps: list[tuple[float, dict[str, Any]]]) -> None:
        self.steps = steps

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        reward, info = self.steps[self.t]
        self.t += 1
        return np.zeros(1, np.float32), reward, self.t == len(self.steps), False, info


class Recorder(gym.Wrapper):
    """Keeps what the wrapped env received and returned, to check what an outer wrapper passed on."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.actions: list[np.ndarray] = []
        self.infos: list[dict[str, Any]] = []

    def step(self, action):
        self.actions.append(np.array(action, copy=True))
        result = self.env.step(action)
        self.infos.append(result[4])
        return result


def make_pick(obs_mode: str = "pixels", **kwargs) -> gym.Env:
    return envs.make_env("PickCube", obs_mode=obs_mode, image_size=IMAGE_SIZE, **kwargs)


def expert_for(env: gym.Env):
    spec = env.unwrapped.task.spec
    return make_expert(spec.twin, spec.action_scale, seed=0)


def run_expert_episode(env: gym.Env, seed: int = 0) -> list[tuple]:
    """One scripted-expert episode; returns every step's (obs, reward, terminated, truncated, info)."""
    env.reset(seed=seed)
    expert, robot = expert_for(env), env.unwrapped.robot
    steps = []
    while True:
        step = env.step(expert.act(robot.get_state(), robot.get_object_poses()))
        steps.append(step)
        if step[2] or step[3]:
            return steps


# -- EpisodeStats ------------------------------------------------------------------------------
def test_episode_stats_exact_on_scripted_steps():
    steps = [
        (0.5, {"success": False, "safety_margin": 0.20, "intervened": False, "reward_terms": {"a": 1.0}}),
        (-1.0, {"success": True, "safety_margin": -0.05, "intervened": True, "reward_terms": {"a": 0.5}}),
        (0.25, {"success": False, "safety_margin": -0.01, "intervened": True, "reward_terms": {"a": 2.0}}),
        (2.0, {"success": False, "safety_margin": 0.30, "intervened": False, "reward_terms": {"a": 0.0}}),
    ]
    env = EpisodeStats(ScriptedInfoEnv(steps))
    for _ in range(2):  # the second episode proves reset clears the tallies
        env.reset()
        infos = [env.step(np.zeros(4, np.float32))[4] for _ in steps]
        assert all("episode" not in info for info in infos[:-1])
        assert infos[-1]["episode"] == {
            "return": 0.5 - 1.0 + 0.25 + 2.0,
            "length": 4,
            "success": True,  # only the second step succeeded
            "min_safety_margin": -0.05,
            "violations": 2,
            "interventions": 2,
            "reward_terms": {"a": 3.5},
        }
    assert "episode" not in steps[-1][1]  # the inner env's info dict is not mutated


def test_episode_stats_on_expert_episode_and_truncation():
    env = EpisodeStats(make_pick("state", reward_mode="dense"))
    steps = run_expert_episode(env)
    infos = [step[4] for step in steps]
    episode = infos[-1]["episode"]
    assert steps[-1][2] and infos[-1]["success"]  # the expert lifted the cube: terminated on success
    assert 10 <= episode["length"] == len(steps) <= 40
    assert episode["success"] is True
    assert episode["return"] == pytest.approx(sum(float(step[1]) for step in steps), abs=1e-12)
    assert episode["min_safety_margin"] == min(info["safety_margin"] for info in infos)
    assert episode["violations"] == sum(info["safety_margin"] < 0 for info in infos)
    assert episode["interventions"] == 0
    for name in ("reach", "grasp", "lift"):
        expected = sum(info["reward_terms"][name] for info in infos)
        assert episode["reward_terms"][name] == pytest.approx(expected, abs=1e-12)
    assert episode["reward_terms"]["lift"] > 0

    short = EpisodeStats(make_pick("state", max_episode_steps=3))
    short.reset(seed=1)
    results = [short.step(np.array([0, 0, 0, -1], np.float32)) for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]
    assert "episode" not in results[1][4]
    assert results[2][4]["episode"]["length"] == 3
    assert results[2][4]["episode"]["success"] is False
    assert results[2][4]["episode"]["return"] == 0.0  # sparse reward, no success


# -- GripperTogglePenalty ----------------------------------------------------------------------
def test_gripper_toggle_penalty_counts_two_toggles():
    penalty = 0.1
    inner = Recorder(make_pick("state", reward_mode="dense"))
    env = EpisodeStats(GripperTogglePenalty(inner, penalty=penalty))
    env.reset(seed=0)
    weights = inner.unwrapped.task.spec.dense_weights
    commands = [-1.0, 1.0, 1.0, -1.0]  # open, close, close, open
    expected_toggles = [0.0, 1.0, 0.0, 1.0]
    rewards, infos = [], []
    for gripper in commands:
        _, reward, _, _, info = env.step(np.array([0.0, 0.0, 0.0, gripper], np.float32))
        rewards.append(reward)
        infos.append(info)
    assert [info["reward_terms"]["gripper_toggle"] for info in infos] == expected_toggles
    task_rewards = []
    for info, inner_info in zip(infos, inner.infos, strict=True):
        assert "gripper_toggle" not in inner_info["reward_terms"]  # the inner dict was copied
        terms = inner_info["reward_terms"]
        task_rewards.append(float(info["success"]) + sum(w * terms[k] for k, w in weights.items()))
    expected = [r - penalty * t for r, t in zip(task_rewards, expected_toggles, strict=True)]
    np.testing.assert_allclose(rewards, expected, rtol=0, atol=1e-12)
    assert sum(task_rewards) - sum(rewards) == pytest.approx(2 * penalty)

    env.step(np.array([0.0, 0.0, 0.0, 1.0], np.float32))  # leave the gripper closed...
    env.reset(seed=0)  # ...yet a new episode starts from "open": closing at once is a toggle
    info = env.step(np.array([0.0, 0.0, 0.0, 1.0], np.float32))[4]
    assert info["reward_terms"]["gripper_toggle"] == 1.0


def test_gripper_toggle_penalty_sums_in_episode_stats():
    env = EpisodeStats(GripperTogglePenalty(make_pick("state", max_episode_steps=5), penalty=0.25))
    env.reset(seed=0)
    for gripper in (1.0, -1.0, -1.0, 1.0, 1.0):  # three toggles, sparse reward stays 0 without success
        info = env.step(np.array([0.0, 0.0, 0.0, gripper], np.float32))[4]
    assert info["episode"]["reward_terms"]["gripper_toggle"] == 3.0
    assert info["episode"]["return"] == pytest.approx(-0.75)


# -- ImageTransform ----------------------------------------------------------------------------
def test_image_transform_crop_then_resize_matches_cv2():
    crop = {"front": (8, 56, 4, 60), "wrist": (0, 32, 0, 64)}
    inner = make_pick()
    env = ImageTransform(inner, crop=crop, size=(24, 32))
    assert env.observation_space["images"]["front"].shape == (24, 32, 3)
    assert env.observation_space["images"]["wrist"].shape == (24, 32, 3)
    obs, _ = env.reset(seed=0)
    obs = env.step(np.array([0.3, 0.0, -0.2, -1.0], np.float32))[0]
    assert env.observation_space.contains(obs)
    raw = inner.unwrapped.robot.get_frames()  # the same sim state renders the same frames
    for camera, (top, bottom, left, right) in crop.items():
        frame = obs["images"][camera]
        assert frame.shape == (24, 32, 3) and frame.dtype == np.uint8 and frame.flags["C_CONTIGUOUS"]
        expected = cv2.resize(
            np.ascontiguousarray(raw[camera][top:bottom, left:right]), (32, 24), interpolation=cv2.INTER_AREA
        )
        np.testing.assert_array_equal(frame, expected)
    expected_state = proprioception(inner.unwrapped.robot.get_state()).astype(np.float32)
    np.testing.assert_array_equal(obs["state"], expected_state)


def test_image_transform_crop_only_and_errors():
    env = ImageTransform(make_pick(), crop={"wrist": (10, 20, 30, 45)})
    assert env.observation_space["images"]["wrist"].shape == (10, 15, 3)
    assert env.observation_space["images"]["front"].shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    obs, _ = env.reset(seed=0)
    assert obs["images"]["wrist"].shape == (10, 15, 3) and obs["images"]["wrist"].flags["C_CONTIGUOUS"]
    raw = env.unwrapped.robot.get_frames()
    np.testing.assert_array_equal(obs["images"]["wrist"], raw["wrist"][10:20, 30:45])

    with pytest.raises(ValueError, match="unknown camera 'side'"):
        ImageTransform(make_pick(), crop={"side": (0, 10, 0, 10)})
    with pytest.raises(ValueError, match="outside its 64x64 frame"):
        ImageTransform(make_pick(), crop={"front": (0, 65, 0, 10)})
    with pytest.raises(ValueError, match="outside"):
        ImageTransform(make_pick(), crop={"front": (20, 10, 0, 10)})
    with pytest.raises(ValueError, match="obs_mode='pixels'"):
        ImageTransform(make_pick("state"), size=(32, 32))


# -- RelativeFrameActions ----------------------------------------------------------------------
def test_tool_to_base_action_by_hand():
    np.testing.assert_allclose(tool_to_base_action([1.0, 0.5, 0.3, 0.7], TCP_DOWN), [1.0, -0.5, -0.3, 0.7])
    np.testing.assert_allclose(
        tool_to_base_action([0.2, 0.4, -0.6, -1.0], [1, 0, 0, 0]), [0.2, 0.4, -0.6, -1.0]
    )
    # 90 deg about z: (x, y) -> (-y, x).
    quarter_z = [np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)]
    np.testing.assert_allclose(
        tool_to_base_action([0.5, 0.2, 0.1, 1.0], quarter_z), [-0.2, 0.5, 0.1, 1.0], atol=1e-6
    )
    # 45 deg about z turns (1, 1, 0) into (0, sqrt 2, 0): clipped back to (0, 1, 0).
    eighth_z = [np.cos(np.pi / 8), 0.0, 0.0, np.sin(np.pi / 8)]
    np.testing.assert_allclose(
        tool_to_base_action([1.0, 1.0, 0.0, 0.0], eighth_z), [0.0, 1.0, 0.0, 0.0], atol=1e-6
    )
    with pytest.raises(ValueError, match="shape"):
        tool_to_base_action([1.0, 0.0, 0.0], TCP_DOWN)


def test_relative_frame_actions_reach_inner_env_rotated():
    inner = Recorder(make_pick("state"))
    env = RelativeFrameActions(inner)
    env.reset(seed=0)
    robot = inner.unwrapped.robot
    for _ in range(4):  # the env turns the TCP to point straight down within a few steps of reset
        env.step(np.array([0.0, 0.0, 0.0, -1.0], np.float32))
    before = robot.get_state()
    assert np.linalg.norm(np.abs(before.tcp_quat) - TCP_DOWN) < 5e-3
    env.step(np.array([1.0, 0.5, 0.3, 0.4], np.float32))
    sent = inner.actions[-1]
    np.testing.assert_allclose(sent, [1.0, -0.5, -0.3, 0.4], atol=0.02)
    np.testing.assert_allclose(sent, tool_to_base_action([1.0, 0.5, 0.3, 0.4], before.tcp_quat), atol=1e-6)

    # Moving along the tool's +z (its approach axis) moves the TCP down in the base frame.
    start = robot.get_state().tcp_pos
    for _ in range(3):
        env.step(np.array([0.0, 0.0, 1.0, -1.0], np.float32))
    motion = robot.get_state().tcp_pos - start
    assert motion[2] < -0.03  # 3 steps of up to 3 cm each
    assert np.linalg.norm(motion[:2]) < 0.3 * abs(motion[2])


# -- VideoRecorder -----------------------------------------------------------------------------
def read_video(path: Path) -> tuple[list[np.ndarray], int, int, int]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, count, width, height


def test_video_recorder_writes_expert_episode(tmp_path):
    out_dir = tmp_path / "videos" / "nested"
    env = VideoRecorder(make_pick(), out_dir)
    assert env.fps == 10.0  # the robot's control rate
    obs, _ = env.reset(seed=0)
    first = tile_frames(obs["images"])
    expert, robot = expert_for(env), env.unwrapped.robot
    length = 0
    while True:
        *_, terminated, truncated, _ = env.step(expert.act(robot.get_state(), robot.get_object_poses()))
        length += 1
        if length == 5:  # mid-episode: only the hidden partial file exists
            assert [p.name for p in out_dir.iterdir()] == [".episode_000000.partial.mp4"]
        if terminated or truncated:
            break
    assert env.paths == [out_dir / "episode_000000.mp4"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["episode_000000.mp4"]
    frames, count, width, height = read_video(env.paths[0])
    assert count == len(frames) == length + 1  # the reset frame, then one per step
    assert (width, height) == (2 * IMAGE_SIZE, IMAGE_SIZE)  # front and wrist side by side
    decoded = frames[0][..., ::-1].astype(float)  # BGR -> RGB
    error = np.abs(decoded - first).mean()
    swapped_error = np.abs(decoded[..., ::-1] - first).mean()
    assert error < 6.0 < swapped_error  # lossy codec, but the colours are in RGB order
    env.close()


def test_video_recorder_every_n_and_state_mode(tmp_path):
    env = VideoRecorder(make_pick("state", max_episode_steps=3), tmp_path, fps=5, every_n_episodes=2)
    for _ in range(3):
        env.reset(seed=0)
        for _ in range(3):
            env.step(np.array([0.0, 0.0, 0.0, -1.0], np.float32))
    assert [p.name for p in env.paths] == ["episode_000000.mp4", "episode_000002.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode_000000.mp4", "episode_000002.mp4"]
    for path in env.paths:
        frames, count, width, height = read_video(path)
        assert count == len(frames) == 4
        assert (width, height) == (2 * IMAGE_SIZE, IMAGE_SIZE)
        assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)

    # An episode cut short by reset() or close() keeps the frames it has.
    env.reset(seed=0)  # episode 3: not recorded
    env.reset(seed=0)  # episode 4: recorded, then closed after one step
    env.step(np.array([0.0, 0.0, 0.0, -1.0], np.float32))
    env.close()
    assert env.paths[-1].name == "episode_000004.mp4"
    assert read_video(env.paths[-1])[1] == 2


def test_tile_frames_pads_to_even_and_common_height():
    frames = {"a": np.full((5, 3, 3), 10, np.uint8), "b": np.full((4, 2, 3), 20, np.uint8)}
    tiled = tile_frames(frames)
    assert tiled.shape == (6, 6, 3)
    assert (tiled[:5, :3] == 10).all() and (tiled[:4, 3:5] == 20).all()
    assert (tiled[4:, 3:5] == 0).all() and (tiled[5] == 0).all() and (tiled[:, 5] == 0).all()
