"""Gymnasium wrappers for any `RobotEnv` (real arm or sim twin): episode statistics, MP4 videos,
image crop/resize, a gripper-toggle penalty and tool-frame actions. Each one is small and composable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, SupportsFloat

import cv2
import gymnasium as gym
import numpy as np

from robot import rotate_by_quat

StepResult = tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]
CropBounds = tuple[int, int, int, int]  # top, bottom, left, right (pixels, end exclusive)


class EpisodeStats(gym.Wrapper):
    """Why: a learning curve needs per-episode success, safety and reward terms, not only the return.

    Counts the episode's steps (the reset state is not a step). When an episode ends, info["episode"]
    holds: return, length, success (any step succeeded), min_safety_margin, violations (steps with
    safety_margin < 0), interventions (steps with intervened) and reward_terms (per-term sums)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._clear()

    def _clear(self) -> None:
        self.episode_return = 0.0
        self.length = 0
        self.success = False
        self.min_safety_margin = float("inf")
        self.violations = 0
        self.interventions = 0
        self.reward_terms: dict[str, float] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._clear()
        return self.env.reset(seed=seed, options=options)

    def step(self, action) -> StepResult:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.episode_return += float(reward)
        self.length += 1
        self.success |= bool(info.get("success", False))
        margin = float(info.get("safety_margin", float("inf")))
        self.min_safety_margin = min(self.min_safety_margin, margin)
        self.violations += int(margin < 0)
        self.interventions += int(bool(info.get("intervened", False)))
        for name, value in info.get("reward_terms", {}).items():
            self.reward_terms[name] = self.reward_terms.get(name, 0.0) + float(value)
        if terminated or truncated:
            info = {**info, "episode": self.summary()}
        return obs, reward, terminated, truncated, info

    def summary(self) -> dict[str, Any]:
        """The statistics so far, as plain Python numbers (JSON-ready)."""
        return {
            "return": self.episode_return,
            "length": self.length,
            "success": self.success,
            "min_safety_margin": self.min_safety_margin,
            "violations": self.violations,
            "interventions": self.interventions,
            "reward_terms": dict(self.reward_terms),
        }


def tile_frames(frames: Mapping[str, np.ndarray]) -> np.ndarray:
    """All cameras side by side (RGB), shorter ones padded black at the bottom, and the whole
    padded to even height and width, which the MPEG-4 encoder needs (it would crop otherwise)."""
    height = max(frame.shape[0] for frame in frames.values())
    columns = [np.pad(f, ((0, height - f.shape[0]), (0, 0), (0, 0))) for f in frames.values()]
    tiled = np.concatenate(columns, axis=1)
    return np.pad(tiled, ((0, tiled.shape[0] % 2), (0, tiled.shape[1] % 2), (0, 0)))


class VideoRecorder(gym.Wrapper):
    """Why: watching episodes is the fastest way to see how a policy fails; one MP4 per episode.

    A video holds the reset frame and one frame per step, so it has episode length + 1 frames; each
    frame is every camera side by side (see `tile_frames`). Frames come from obs["images"], or from
    the robot's cameras in state mode. A video is written under a hidden temporary name and renamed
    to episode_{index:06d}.mp4 when its episode ends (or is cut short by reset/close), so a crash
    never leaves a truncated file under a final name. Episodes are indexed from 0 by reset()."""

    def __init__(
        self, env: gym.Env, out_dir: str | os.PathLike, fps: float | None = None, every_n_episodes: int = 1
    ) -> None:
        super().__init__(env)
        if every_n_episodes < 1:
            raise ValueError(f"every_n_episodes must be >= 1, got {every_n_episodes}")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.fps = float(fps if fps is not None else env.unwrapped.robot.control_hz)
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        self.every_n_episodes = every_n_episodes
        self.paths: list[Path] = []
        self.episode_index = -1
        self._writer: cv2.VideoWriter | None = None
        self._frame_size: tuple[int, int] | None = None  # (width, height) of the open video
        self._recording = False

    def path_for(self, episode_index: int) -> Path:
        return self.out_dir / f"episode_{episode_index:06d}.mp4"

    def _partial_path(self) -> Path:
        # Keeps the .mp4 suffix: OpenCV picks the container from it.
        return self.out_dir / f".episode_{self.episode_index:06d}.partial.mp4"

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._finish()
        obs, info = self.env.reset(seed=seed, options=options)
        self.episode_index += 1
        self._recording = self.episode_index % self.every_n_episodes == 0
        if self._recording:
            self._write(obs)
        return obs, info

    def step(self, action) -> StepResult:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._recording:
            self._write(obs)
            if terminated or truncated:
                self._finish()
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self._finish()
        super().close()

    def _write(self, obs: Any) -> None:
        has_images = isinstance(obs, Mapping) and "images" in obs
        frames = obs["images"] if has_images else self.env.unwrapped.robot.get_frames()
        tiled = tile_frames(frames)
        size = (tiled.shape[1], tiled.shape[0])
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self._partial_path()), fourcc, self.fps, size)
            if not self._writer.isOpened():
                self._writer = None
                raise RuntimeError(f"OpenCV could not open an mp4v video at {self._partial_path()}")
            self._frame_size = size
        elif size != self._frame_size:
            # OpenCV would silently drop the frame.
            raise ValueError(f"frame size changed mid-episode from {self._frame_size} to {size}")
        self._writer.write(np.ascontiguousarray(tiled[..., ::-1]))  # RGB -> BGR

    def _finish(self) -> None:
        self._recording = False
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        final = self.path_for(self.episode_index)
        os.replace(self._partial_path(), final)
        self.paths.append(final)


class ImageTransform(gym.ObservationWrapper):
    """Why: policies learn faster on small images centred on the task; crop the rest away, then shrink.

    `crop` maps a camera to (top, bottom, left, right) pixel bounds, end exclusive, applied first;
    `size` (H, W) then resizes every camera with cv2.INTER_AREA. Frames stay uint8 and contiguous."""

    def __init__(
        self,
        env: gym.Env,
        crop: Mapping[str, CropBounds] | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict) or "images" not in space.spaces:
            raise ValueError("ImageTransform needs image observations (make the env with obs_mode='pixels')")
        cameras: dict[str, gym.spaces.Box] = dict(space["images"].spaces)
        self.crop = {name: check_crop(name, bounds, cameras) for name, bounds in (crop or {}).items()}
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError(f"size must be (height, width) with both >= 1, got {size}")
        self.size = None if size is None else (int(size[0]), int(size[1]))
        images = {}
        for name, box in cameras.items():
            height, width = self.size or self._cropped_shape(name, box.shape)
            images[name] = gym.spaces.Box(0, 255, shape=(height, width, box.shape[2]), dtype=np.uint8)
        self.observation_space = gym.spaces.Dict({**space.spaces, "images": gym.spaces.Dict(images)})

    def _cropped_shape(self, camera: str, shape: tuple[int, ...]) -> tuple[int, int]:
        if camera not in self.crop:
            return shape[0], shape[1]
        top, bottom, left, right = self.crop[camera]
        return bottom - top, right - left

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        images = {name: self.transform(name, frame) for name, frame in observation["images"].items()}
        return {**observation, "images": images}

    def transform(self, camera: str, frame: np.ndarray) -> np.ndarray:
        if camera in self.crop:
            top, bottom, left, right = self.crop[camera]
            frame = frame[top:bottom, left:right]
        frame = np.ascontiguousarray(frame)
        if self.size is not None and frame.shape[:2] != self.size:
            frame = cv2.resize(frame, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        return frame


def check_crop(camera: str, bounds: CropBounds, cameras: Mapping[str, gym.spaces.Box]) -> CropBounds:
    """Validated (top, bottom, left, right) ints for `camera`, or a ValueError that says what is wrong."""
    if camera not in cameras:
        raise ValueError(f"crop names unknown camera {camera!r}; cameras: {sorted(cameras)}")
    if len(bounds) != 4:
        raise ValueError(f"crop for {camera!r} must be (top, bottom, left, right), got {bounds}")
    top, bottom, left, right = (int(b) for b in bounds)
    height, width = cameras[camera].shape[:2]
    if not (0 <= top < bottom <= height and 0 <= left < right <= width):
        raise ValueError(
            f"crop {tuple(bounds)} for {camera!r} is outside its {height}x{width} frame: "
            f"need 0 <= top < bottom <= {height} and 0 <= left < right <= {width}"
        )
    return top, bottom, left, right


class GripperTogglePenalty(gym.Wrapper):
    """Why: HIL-SERL's small penalty per gripper toggle stops a policy from chattering the gripper.

    A step toggles when its command (action[3] > 0: close) differs from the previous step's; the first
    step after reset compares with "open". info["reward_terms"]["gripper_toggle"] is 1.0 or 0.0."""

    def __init__(self, env: gym.Env, penalty: float = 0.1) -> None:
        super().__init__(env)
        if penalty < 0:
            raise ValueError(f"penalty must be >= 0, got {penalty}")
        self.penalty = float(penalty)
        self._closed = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._closed = False
        return self.env.reset(seed=seed, options=options)

    def step(self, action) -> StepResult:
        # The inner env validates the action first, so a malformed one fails with its clear error.
        obs, reward, terminated, truncated, info = self.env.step(action)
        closed = bool(np.asarray(action).reshape(-1)[3] > 0)
        toggled = closed != self._closed
        self._closed = closed
        terms = {**info.get("reward_terms", {}), "gripper_toggle": float(toggled)}
        info = {**info, "reward_terms": terms}
        return obs, float(reward) - self.penalty * toggled, terminated, truncated, info


class DiscreteGripper(gym.Wrapper):
    """Why: HIL-SERL's hybrid agent picks the gripper from {open, stay, close}; "stay" needs memory.

    action[-1] > 0.5 closes, < -0.5 opens, anything between holds the previous command (open after
    reset). The inner env always receives +1 (close) or -1 (open)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._closed = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._closed = False
        return self.env.reset(seed=seed, options=options)

    def step(self, action) -> StepResult:
        action = np.array(action, dtype=np.float32)  # a copy: the caller's array stays as it was
        self._closed = next_gripper_state(self._closed, float(action[-1]))
        action[-1] = 1.0 if self._closed else -1.0
        return self.env.step(action)


def next_gripper_state(closed: bool, command: float) -> bool:
    """Tri-state gripper command -> closed after it (NaN keeps the state; the env rejects NaN)."""
    if command > 0.5:
        return True
    if command < -0.5:
        return False
    return closed


def tool_to_base_action(action: np.ndarray, tcp_quat: np.ndarray) -> np.ndarray:
    """Rotate the translation of a tool-frame action into the base frame with `tcp_quat` (w, x, y, z)
    and clip each component back to [-1, 1]; the gripper command passes through unchanged.

    Clipping is per axis, so a rotated vector that leaves the unit box (e.g. (1, 1, 0) turned 45 deg
    about z) loses some magnitude and may change direction slightly: the env's action box is per axis."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (4,):
        raise ValueError(f"action must have shape (4,), got {action.shape}")
    quat = np.asarray(tcp_quat, dtype=np.float64)
    delta = rotate_by_quat(action[:3], quat / np.linalg.norm(quat))
    return np.append(np.clip(delta, -1.0, 1.0), action[3]).astype(np.float32)


class RelativeFrameActions(gym.ActionWrapper):
    """Why: in the tool frame "forward" is along the gripper, as teleop and wrist-camera policies expect.

    The first three action dims are a TCP-frame translation, rotated to the base frame with the TCP's
    current orientation and clipped per axis to [-1, 1] (see `tool_to_base_action`)."""

    def action(self, action) -> np.ndarray:
        return tool_to_base_action(action, self.env.unwrapped.robot.get_state().tcp_quat)


class GymnasiumAdapter(gym.Wrapper):
    """Any registered gymnasium env with a Box or Dict observation and a Box action, seen as a
    realrl task: observations {"state": float32 vector[, "images": {name: uint8 HxWx3}]}, actions
    in [-1, 1] rescaled to the env's bounds, and info["success"] from the env's own success key
    (None when it has none). Lets users sanity-check the learner on standard control tasks."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        action = env.action_space
        if not isinstance(action, gym.spaces.Box) or not np.all(np.isfinite([action.low, action.high])):
            raise ValueError(f"{env.spec.id if env.spec else env}: need a bounded Box action, got {action}")
        self._low, self._high = action.low.astype(np.float32), action.high.astype(np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=action.shape, dtype=np.float32)
        self._state_keys, self._image_keys = _split_observation_space(env.observation_space)
        state_dim = sum(int(np.prod(_subspace(env.observation_space, k).shape)) for k in self._state_keys)
        spaces = {"state": gym.spaces.Box(-np.inf, np.inf, shape=(state_dim,), dtype=np.float32)}
        if self._image_keys:
            spaces["images"] = gym.spaces.Dict(
                {k: _subspace(env.observation_space, k) for k in self._image_keys}
            )
        self.observation_space = gym.spaces.Dict(spaces)

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        return self._observation(obs), self._info(info)

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        scaled = self._low + (action + 1.0) * 0.5 * (self._high - self._low)
        obs, reward, terminated, truncated, info = self.env.step(scaled)
        return self._observation(obs), float(reward), terminated, truncated, self._info(info)

    def _observation(self, obs) -> dict:
        state = [np.asarray(obs if key is None else obs[key], np.float32).ravel() for key in self._state_keys]
        out = {"state": np.concatenate(state) if state else np.zeros(0, np.float32)}
        if self._image_keys:
            out["images"] = {k: np.asarray(obs[k], np.uint8) for k in self._image_keys}
        return out

    @staticmethod
    def _info(info: dict) -> dict:
        success = info.get("success", info.get("is_success"))
        return {**info, "success": None if success is None else bool(success)}


def _subspace(space: gym.Space, key: str | None) -> gym.Space:
    return space if key is None else space[key]


def _split_observation_space(space: gym.Space) -> tuple[list[str | None], list[str]]:
    """State keys (None = the whole Box) and camera keys (uint8 HxWx3 Boxes) of an observation."""
    if isinstance(space, gym.spaces.Box):
        return [None], []
    if not isinstance(space, gym.spaces.Dict) or not all(
        isinstance(s, gym.spaces.Box) for s in space.spaces.values()
    ):
        raise ValueError(f"need a Box or a Dict of Boxes observation, got {space}")
    images = [
        k for k, s in space.spaces.items() if s.dtype == np.uint8 and len(s.shape) == 3 and s.shape[2] == 3
    ]
    return [k for k in space.spaces if k not in images], images
