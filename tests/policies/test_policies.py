"""Policies as an actor sees them: built back from `describe()` in another process, batched and
single acting agree, specs are checked, random actions are uniform and seeded."""

import numpy as np
import pytest
import torch

from learner.algorithms import ALGORITHMS
from learner.configs import SACConfig
from policies import POLICIES, PolicySpec, build_policy, with_encoder_model
from policies.encoder_files import save_encoder_model
from policies.encoders import FrameTrunk, trunk_hash
from policies.random import RandomPolicy
from policies.sac import GaussianPolicy

PIXELS = PolicySpec(state_dim=5, action_dim=4, cameras=("front", "wrist"), image_size=24)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_algorithm_policy_is_rebuilt_from_its_description(algorithm):
    config = SACConfig(hidden=(16, 16), critics=2, encoder="conv")
    trained = ALGORITHMS[algorithm](config, PIXELS, seed=3).policy
    rebuilt = build_policy(trained.describe())  # JSON-able: it travels in the learner's welcome
    assert type(rebuilt) is type(trained) and rebuilt.spec == PIXELS
    assert rebuilt.config.pretrained_encoder is False  # pushed weights replace every parameter
    rebuilt.load_weights({k: v.numpy() for k, v in trained.state_dict().items()})
    g = torch.Generator().manual_seed(0)
    state = torch.randn(6, 5, generator=g)
    images = {
        c: torch.randint(0, 256, (6, 24, 24, 3), dtype=torch.uint8, generator=g) for c in PIXELS.cameras
    }
    batched = rebuilt.act_batch(state, images, deterministic=True)
    assert batched.shape == (6, 4) and torch.equal(
        batched, trained.act_batch(state, images, deterministic=True)
    )
    # One observation through `act` is row k of the batch (float32 numpy).
    single = rebuilt.act(
        {"state": state[2].numpy(), "images": {c: v[2].numpy() for c, v in images.items()}}, True
    )
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, batched[2].numpy(), atol=1e-6)


def test_unknown_kind_and_spec_mismatch_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown policy kind 'bc'"):
        build_policy({"kind": "bc", "spec": PIXELS.to_json()})
    assert {"sac", "hybrid-gripper", "random"} <= set(POLICIES)
    with pytest.raises(ValueError, match="image_size.: 24.*image_size.: 128"):
        PIXELS.check(PolicySpec(5, 4, ("front", "wrist"), 128), "this env")


def test_random_policy_is_uniform_in_bounds_and_seeded():
    spec = PolicySpec(state_dim=1, action_dim=3)
    actions = RandomPolicy(spec, seed=1).act_batch(torch.zeros(20_000, 1), {})
    assert actions.shape == (20_000, 3) and actions.abs().max() <= 1
    # Uniform on [-1, 1]: mean 0, variance 1/3.
    torch.testing.assert_close(actions.mean(0), torch.zeros(3), atol=0.02, rtol=0)
    torch.testing.assert_close(actions.var(0), torch.full((3,), 1 / 3), atol=0.01, rtol=0)
    first = RandomPolicy(spec, seed=7).act({"state": np.zeros(1)})
    assert np.array_equal(first, RandomPolicy(spec, seed=7).act({"state": np.zeros(1)}))
    assert RandomPolicy(spec).state_dict() == {}  # nothing to push


def test_an_actor_reads_the_runs_encoder_model_from_its_own_copy_checked_by_hash(tmp_path):
    torch.manual_seed(0)
    learners = tmp_path / "learner" / "encoder.pt"  # the path the learner's run names
    digest = save_encoder_model(learners, FrameTrunk(24, 8), PIXELS.cameras, {})
    config = SACConfig(hidden=(16,), critics=2, encoder=f"pretrained:{learners}", encoder_hash=digest)
    description = ALGORITHMS["sac"](config, PIXELS, seed=3).policy.describe()
    copy = tmp_path / "robot-pc" / "encoder.pt"
    copy.parent.mkdir()
    copy.write_bytes(learners.read_bytes())
    learners.unlink()  # the actor's machine does not have the learner's path
    with pytest.raises(ValueError, match="no such file .*pass --encoder-model"):
        build_policy(description)
    assert with_encoder_model(description, None) is description
    policy = build_policy(with_encoder_model(description, str(copy)))
    assert isinstance(policy, GaussianPolicy) and trunk_hash(policy.encoder.image_encoder.trunk) == digest
    # Another model at that path is refused, naming both hashes.
    save_encoder_model(copy, FrameTrunk(24, 8), PIXELS.cameras, {})
    with pytest.raises(ValueError, match=f"but this run's encoder is {digest}"):
        build_policy(with_encoder_model(description, str(copy)))
