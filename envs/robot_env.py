"""`RobotEnv`: a gymnasium env over any `robot.Robot` and a `Task`. It validates and scales
actions, holds the TCP orientation, and builds observations and info per the design contract:
obs = {"state", "images": {camera: uint8 HxWx3}}; info has success, safety_margin, intervened,
and the reward terms by name."""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np

from envs.tasks import TASKS, Task
from robot import TCP_DOWN_QUAT, Pose, Robot, RobotState

# Proprioception in `state`: TCP position (3), TCP linear velocity (3), gripper width (1).
PROPRIO_DIM = 7
ACTION_DIM = 4  # dx, dy, dz (scaled by the task), gripper (-1 open .. +1 close)


def proprioception(state: RobotState) -> np.ndarray:
    return np.concatenate([state.tcp_pos, state.tcp_linvel, [state.gripper_width]])


class RobotEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        task: str | Task,
        robot: Robot | None = None,
        obs_mode: Literal["state", "pixels"] = "state",
        image_size: int = 128,
        render_mode: str | None = None,
        reward_mode: Literal["sparse", "dense"] = "sparse",
        randomize: bool = False,
    ) -> None:
        if obs_mode not in ("state", "pixels"):
            raise ValueError(f"obs_mode must be 'state' or 'pixels', got {obs_mode!r}")
        if reward_mode not in ("sparse", "dense"):
            raise ValueError(f"reward_mode must be 'sparse' or 'dense', got {reward_mode!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task = TASKS[task]() if isinstance(task, str) else task
        self.obs_mode = obs_mode
        self.reward_mode = reward_mode
        self.render_mode = render_mode
        self.robot = robot if robot is not None else self._make_twin(image_size, randomize)
        self.metadata = {**self.metadata, "render_fps": self.robot.control_hz}
        state_dim = PROPRIO_DIM + (self.task.object_state_dim if obs_mode == "state" else 0)
        spaces: dict[str, gym.Space] = {
            "state": gym.spaces.Box(-np.inf, np.inf, shape=(state_dim,), dtype=np.float32)
        }
        if obs_mode == "pixels":
            frame = gym.spaces.Box(0, 255, shape=(image_size, image_size, 3), dtype=np.uint8)
            spaces["images"] = gym.spaces.Dict({name: frame for name in self.robot.camera_names})
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)
        self._frames: dict[str, np.ndarray] | None = None

    def _make_twin(self, image_size: int, randomize: bool) -> Robot:
        from sim import DomainRandomization, SimRobot, SimRobotConfig

        config = SimRobotConfig(
            scene=self.task.spec.twin,
            image_size=image_size,
            randomization=DomainRandomization.full() if randomize else DomainRandomization(),
        )
        return SimRobot(config)

    def scripted_expert(self, noise: float = 0.0, seed: int | None = None):
        """The twin's scripted expert for this task: a callable () -> action that reads the
        privileged sim state (exact object poses). Only a sim twin has one."""
        from sim import SimRobot, make_expert

        if not isinstance(self.robot, SimRobot):
            raise ValueError("a scripted expert needs the sim twin (it reads privileged sim state)")
        expert = make_expert(self.task.spec.twin, self.task.spec.action_scale, noise=noise, seed=seed)
        robot = self.robot

        class Expert:
            reset = expert.reset

            def __call__(self):
                return expert.act(robot.get_state(), robot.get_object_poses())

        return Expert()

    # -- gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.robot.reset(seed=int(self.np_random.integers(2**31 - 1)))
        self._gripper_cmd = 1.0 if self.task.spec.gripper_locked else -1.0
        state, objects = self.robot.get_state(), self.robot.get_object_poses()
        info = self._info(state, objects, success=self.task.success(state, objects))
        return self._observation(state, objects), info

    def step(self, action):
        action = self.check_action(action)
        state = self.robot.get_state()
        target = state.tcp_pos + action[:3] * self.task.spec.action_scale
        self._gripper_cmd = 1.0 if self.task.spec.gripper_locked else float(action[3])
        self.robot.command(Pose(target, TCP_DOWN_QUAT), gripper=(self._gripper_cmd + 1.0) / 2.0)
        self.robot.advance()
        state, objects = self.robot.get_state(), self.robot.get_object_poses()
        success = self.task.success(state, objects)
        info = self._info(state, objects, success)
        reward = self.task_reward(success, info["reward_terms"])
        return self._observation(state, objects), reward, success, False, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        frames = self._frames if self._frames is not None else self.robot.get_frames()
        return frames[self.robot.camera_names[0]]

    def hold_still(self) -> None:
        """Stop the arm where it is (Robot.stop): the actor calls it when it must wait mid-episode."""
        self.robot.stop()

    def close(self) -> None:
        self.robot.close()

    # -- pieces ------------------------------------------------------------------------------
    def check_action(self, action) -> np.ndarray:
        """NaN/inf or a wrong shape raise ValueError before anything reaches the robot; in-range
        values pass through, out-of-range ones are clipped to [-1, 1]."""
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action contains NaN or inf: {action}")
        return np.clip(action, -1.0, 1.0)

    def task_reward(self, success: bool, terms: dict[str, float]) -> float:
        if self.reward_mode == "sparse":
            return float(success)
        weights = self.task.spec.dense_weights
        return float(success) + sum(weights[name] * terms[name] for name in weights)

    def _observation(self, state: RobotState, objects) -> dict[str, Any]:
        features = [proprioception(state)]
        if self.obs_mode == "state":
            features.append(self.task.object_state(objects))
        obs: dict[str, Any] = {"state": np.concatenate(features).astype(np.float32)}
        self._frames = None
        if self.obs_mode == "pixels":
            self._frames = self.robot.get_frames()
            obs["images"] = self._frames
        return obs

    def _info(self, state: RobotState, objects, success: bool) -> dict[str, Any]:
        return {
            "success": bool(success),
            "safety_margin": self.task.safety_margin(state, objects),
            "intervened": False,
            "reward_terms": self.task.reward_terms(state, objects, self._gripper_cmd),
        }
