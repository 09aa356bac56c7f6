"""What an env's spaces say about the data: the wire's record spec, a demo manifest's obs spec and
a policy's spec."""

from __future__ import annotations

from formats.wire import RecordSpec
from policies import PolicySpec


def image_shapes(env) -> dict[str, tuple[int, ...]]:
    spaces = env.observation_space
    images = spaces["images"].spaces if "images" in spaces.spaces else {}
    return {name: tuple(space.shape) for name, space in images.items()}


def record_spec(env) -> RecordSpec:
    return RecordSpec(
        state_dim=env.observation_space["state"].shape[0],
        action_dim=env.action_space.shape[0],
        image_shapes=image_shapes(env),
    )


def obs_spec(env) -> dict:
    """The env's observations as a demo manifest writes them (formats.episodes `obs_spec`)."""
    return {
        "state": [env.observation_space["state"].shape[0]],
        "images": {name: list(shape) for name, shape in image_shapes(env).items()},
    }


def policy_spec(env) -> PolicySpec:
    shapes = image_shapes(env)
    return PolicySpec(
        state_dim=env.observation_space["state"].shape[0],
        action_dim=env.action_space.shape[0],
        cameras=tuple(shapes),
        image_size=next(iter(shapes.values()))[0] if shapes else 128,
    )
