"""The residual policy over a frozen base (policies.residual): a fresh one acts exactly as its base,
executed actions stay in bounds and within `scale` of the base's, only the residual is pushed, and a
residual meets only the base it was trained over."""

import numpy as np
import pytest
import torch

from actors.composition import ActionPipeline
from policies import PolicySpec, build_policy
from policies.bc import ChunkBCPolicy, GaussianBCPolicy
from policies.configs import BCPolicyConfig, ResidualPolicyConfig
from policies.policy_files import load_policy, save_policy
from policies.residual import ResidualPolicy, with_base_model

SPEC = PolicySpec(state_dim=3, action_dim=2)


@pytest.fixture
def base_file(tmp_path):
    """A chunk BC base (temporal ensembling: it keeps state across steps) with random weights."""
    base = ChunkBCPolicy.build(SPEC, BCPolicyConfig(hidden=(16,), chunk_size=3), seed=4)
    path = tmp_path / "base.pt"
    return path, save_policy(path, base, {})


def residual_over(path, digest, **config) -> ResidualPolicy:
    config = ResidualPolicyConfig(hidden=(16,), base=str(path), base_hash=digest, **config)
    return ResidualPolicy.build(SPEC, config, seed=1)


def observations(n: int):
    generator = np.random.default_rng(0)
    return [{"state": generator.normal(size=3).astype(np.float32)} for _ in range(n)]


def test_a_fresh_residual_acts_exactly_as_its_base(base_file):
    residual = residual_over(*base_file)
    alone = load_policy(base_file[0]).policy  # the same base, run by itself
    composed, base_only = ActionPipeline(residual), ActionPipeline(alone)
    for _ in range(2):  # two episodes: reset clears the chunk state of both
        composed.reset(), base_only.reset()
        for obs in observations(6):
            decision, expected = composed.act(obs, deterministic=True), base_only.act(obs, deterministic=True)
            np.testing.assert_array_equal(decision.action, expected.action)
            np.testing.assert_array_equal(decision.base_action, expected.action)
    state = torch.as_tensor(np.stack([o["state"] for o in observations(4)]))
    residual.reset(), alone.reset()
    assert torch.equal(residual.act_batch(state, {}, True), alone.act_batch(state, {}, True))


def test_executed_actions_stay_in_bounds_and_within_scale_of_the_base(base_file):
    residual = residual_over(*base_file, scale=0.2)
    with torch.no_grad():
        for parameter in residual.actor.parameters():
            parameter.uniform_(-3.0, 3.0)  # a residual pushed hard in every direction
    generator = torch.Generator().manual_seed(0)
    state = torch.randn(256, 3, generator=generator)
    base_action = torch.rand(256, 2, generator=generator) * 2 - 1
    base_action[:8] = torch.tensor([1.0, -1.0])  # at the bounds: the correction is clipped
    for deterministic in (True, False):
        executed = residual.correct_batch(state, {}, base_action, deterministic)
        assert executed.abs().max() <= 1.0
        assert (executed - base_action).abs().max() <= 0.2 + 1e-6
        assert (executed - base_action).abs().max() > 0.1  # it does correct


def test_only_the_residual_is_pushed_and_another_process_rebuilds_it_over_its_copy_of_the_base(
    base_file, tmp_path
):
    residual = residual_over(*base_file)
    with torch.no_grad():
        residual.actor.net[-1].weight.normal_()  # trained: no longer the base's actions
    pushed = residual.pushed_state_dict()
    assert pushed and not [name for name in pushed if name.startswith("base.")]
    copy = tmp_path / "elsewhere" / "base.pt"
    copy.parent.mkdir()
    copy.write_bytes(base_file[0].read_bytes())
    rebuilt = build_policy(with_base_model(residual.describe(), copy))
    rebuilt.load_weights(pushed)
    state = torch.as_tensor(np.stack([o["state"] for o in observations(5)]))
    residual.reset(), rebuilt.reset()
    assert torch.equal(residual.act_batch(state, {}, True), rebuilt.act_batch(state, {}, True))


def test_a_residual_meets_only_its_own_base(base_file, tmp_path):
    path, digest = base_file
    other = tmp_path / "other.pt"
    save_policy(other, GaussianBCPolicy.build(SPEC, BCPolicyConfig(hidden=(16,))), {})
    described = residual_over(path, digest).describe()
    with pytest.raises(ValueError, match=f"this residual was trained over base {digest}"):
        build_policy(with_base_model(described, other))
    wide = tmp_path / "wide.pt"
    save_policy(wide, GaussianBCPolicy.build(PolicySpec(5, 2), BCPolicyConfig(hidden=(16,))), {})
    with pytest.raises(ValueError, match=r"base policy .*wide\.pt: the policy expects .*'state_dim': 5"):
        residual_over(wide, None)
    with pytest.raises(ValueError, match="needs its base policy's MODEL file"):
        ResidualPolicy.build(SPEC, ResidualPolicyConfig(hidden=(16,)))


def test_a_fresh_residual_explores_with_its_initial_noise(base_file):
    residual = residual_over(*base_file, scale=0.2, init_noise=0.03)
    state = torch.zeros(4096, 3)
    base_action = torch.zeros(4096, 2)
    correction = residual.correct_batch(state, {}, base_action, deterministic=False)
    # tanh is nearly linear at a pre-tanh std of 0.15: the executed noise has std ~0.03 and mean 0.
    np.testing.assert_allclose(correction.std(dim=0).numpy(), [0.03, 0.03], rtol=0.06)
    assert correction.mean(dim=0).abs().max() < 0.003
