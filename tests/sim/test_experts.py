import numpy as np
import pytest

from envs import make_env
from sim import make_expert


def success_rate(task: str, noise: float, episodes: int = 20) -> float:
    env = make_env(task)
    u = env.unwrapped
    successes = 0
    for seed in range(episodes):
        env.reset(seed=seed)
        expert = make_expert(u.task.spec.twin, u.task.spec.action_scale, noise=noise, seed=seed)
        while True:
            action = expert.act(u.robot.get_state(), u.robot.get_object_poses())
            assert action.dtype == np.float32 and np.all(np.abs(action) <= 1.0)
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        successes += info["success"]
    return successes / episodes


@pytest.mark.parametrize("task", ["PickCube", "PegInsert"])
def test_scripted_expert_succeeds(task):
    assert success_rate(task, noise=0.0) >= 0.95


@pytest.mark.parametrize("task", ["PickCube", "PegInsert"])
def test_noisy_expert_is_worse_but_not_useless(task):
    clean, noisy = success_rate(task, noise=0.0), success_rate(task, noise=0.6)
    assert 0.0 < noisy < clean


def test_unknown_scene_has_no_expert():
    with pytest.raises(ValueError, match="pick_cube"):
        make_expert("stack_blocks", 0.03)
