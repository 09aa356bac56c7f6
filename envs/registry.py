"""Registered task ids and the one place that turns a user's `--task` into an id."""

from __future__ import annotations

import gymnasium as gym

from envs.tasks import TASKS

NAMESPACE = "realrl"
GYMNASIUM_PREFIX = "gymnasium:"


def task_id(name: str) -> str:
    return f"{NAMESPACE}/{name}-v0"


TASK_IDS = {name: task_id(name) for name in TASKS}


def register_tasks() -> None:
    for name, env_id in TASK_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="envs.robot_env:RobotEnv",
                max_episode_steps=TASKS[name].spec.max_episode_steps,
                kwargs={"task": name},
            )


def resolve_task_id(task: str) -> str:
    """Accept a registered id (`realrl/PickCube-v0`) or its short name (`PickCube`)."""
    if task in TASK_IDS.values():
        return task
    if task in TASK_IDS:
        return TASK_IDS[task]
    known = ", ".join(f"{env_id} ({name})" for name, env_id in TASK_IDS.items())
    raise ValueError(f"unknown task {task!r}; registered: {known}")


def make_env(task: str, **kwargs) -> gym.Env:
    """gymnasium.make for a task id or short name."""
    return gym.make(resolve_task_id(task), **kwargs)


def make_gymnasium_env(env: str, **kwargs) -> gym.Env:
    """`gymnasium:<ID>`: any registered gymnasium env with a Box or Dict observation and a Box
    action, adapted to realrl's observation and action conventions (envs.GymnasiumAdapter)."""
    from envs.wrappers import GymnasiumAdapter

    if not env.startswith(GYMNASIUM_PREFIX) or len(env) == len(GYMNASIUM_PREFIX):
        raise ValueError(f"--env must look like gymnasium:<ID> (e.g. gymnasium:Pendulum-v1), got {env!r}")
    env_id = env[len(GYMNASIUM_PREFIX) :]
    try:
        return GymnasiumAdapter(gym.make(env_id, **kwargs))
    except gym.error.Error as error:
        raise ValueError(f"gymnasium could not make {env_id!r}: {error}") from error
