"""The BC policies (policies.bc) and policy model files: losses against hand-computed values, the
chunk policy's acting state against hand-worked weights, the shortcut policy keeping two action
modes apart where the Gaussian averages them, and model files that refuse damage."""

import math

import numpy as np
import pytest
import torch

from policies import PolicySpec
from policies.bc import BC_POLICIES, ChunkBCPolicy, GaussianBCPolicy, ShortcutBCPolicy
from policies.configs import BCPolicyConfig
from policies.policy_files import load_policy, save_policy

SPEC = PolicySpec(state_dim=2, action_dim=2)
SMALL = BCPolicyConfig(hidden=(64, 64))


def fitted(policy_class, states, actions, steps: int, seed: int = 0):
    """The policy fitted on (state, action) rows with Adam, as learner.bc does (one action per row)."""
    torch.manual_seed(seed)
    policy = policy_class.build(SPEC, SMALL, seed=seed)
    policy.encoder.fit_state_normalizer(states)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    mask = torch.ones(256, 1, dtype=torch.bool)
    for _ in range(steps):
        rows = torch.randint(len(states), (256,), generator=generator)
        loss = policy.loss(policy.encoder(states[rows]), actions[rows].unsqueeze(1), mask, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return policy


def two_mode_data(n: int = 512):
    """One observation, two equally likely actions: dim 0 at -0.6 or +0.6 (dim 1 at 0), noise 0.02."""
    generator = torch.Generator().manual_seed(0)
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    actions = torch.stack([0.6 * sign, torch.zeros(n)], dim=1) + 0.02 * torch.randn(n, 2, generator=generator)
    return torch.zeros(n, 2), actions


def test_shortcut_samples_fall_in_the_modes_where_the_gaussian_averages_them():
    torch.set_num_threads(1)
    states, actions = two_mode_data()
    gaussian = fitted(GaussianBCPolicy, states, actions, steps=1200)
    shortcut = fitted(ShortcutBCPolicy, states, actions, steps=1200)
    with torch.no_grad():
        features = shortcut.encoder(states)
        # The Gaussian's action is the mean of the modes: an action no demonstrator took.
        assert gaussian.first_action(gaussian.encoder(states))[:, 0].abs().max() < 0.1
        for steps in (1, 8):
            samples = shortcut.sample(features, steps, torch.Generator().manual_seed(1))
            in_mode = (samples[:, 0].abs() - 0.6).abs() < 0.25  # within 0.25 of +-0.6
            assert in_mode.float().mean() > 0.75, steps
            assert 0.3 < (samples[:, 0] > 0).float().mean() < 0.7, steps  # both modes, not one
            assert samples[:, 1].abs().mean() < 0.1


def test_the_gaussian_loss_is_the_negative_log_likelihood_of_the_squashed_gaussian():
    policy = GaussianBCPolicy.build(SPEC, SMALL)
    features = torch.randn(5, policy.encoder.output_dim)
    actions = torch.tensor([[0.5, -0.2], [0.0, 0.9], [-0.99, 0.3], [0.1, 0.1], [1.0, -1.0]])
    mean, log_std = policy.head.distribution(features)
    clipped = actions.clamp(-1 + 1e-3, 1 - 1e-3)
    squashed = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform()]
    )
    expected = -squashed.log_prob(clipped).sum(-1).mean()
    loss = policy.loss(features, actions.unsqueeze(1), torch.ones(5, 1, dtype=torch.bool), None)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


def test_the_chunk_loss_counts_only_actions_inside_the_episode():
    policy = ChunkBCPolicy.build(SPEC, BCPolicyConfig(hidden=(8,), chunk_size=3))
    features = torch.randn(2, policy.encoder.output_dim)
    predicted = policy.predict(features).detach()
    target = predicted.clone()
    target[0, 2] += 1.0  # a wrong action past the episode's end: masked out
    target[1, 1] += 0.5  # a wrong action inside: (0.5^2 + 0.5^2) / 2 dims = 0.25 over 5 valid steps
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert policy.loss(features, target, mask, None).item() == pytest.approx(0.25 / 5, rel=1e-5)


class KnownChunks(ChunkBCPolicy):
    """A chunk policy whose predictions are given, in order (acting state is what is tested)."""

    def __init__(self, chunks, **config):
        super().__init__(SPEC, BCPolicyConfig(hidden=(4,), chunk_size=2, **config), _state_encoder())
        self.chunks = list(chunks)
        self.predictions = 0

    def predict(self, features):
        self.predictions += 1
        return self.chunks.pop(0)


def _state_encoder():
    from policies.encoders import ObservationEncoder

    return ObservationEncoder(SPEC.state_dim)


def test_temporal_ensembling_weighs_older_predictions_by_exp_decay_times_age():
    a, b, c, d, e, f = (torch.full((1, 2), v) for v in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6))
    chunks = [torch.stack([a, b], 1), torch.stack([c, d], 1), torch.stack([e, f], 1)]
    policy = KnownChunks(chunks, ensemble_decay=math.log(2.0))  # age 1 weighs 2, age 0 weighs 1
    obs = {"state": np.zeros(2, np.float32)}
    first, second, third = (policy.act(obs) for _ in range(3))
    np.testing.assert_allclose(first, [0.1, 0.1], rtol=1e-6)  # only a
    np.testing.assert_allclose(second, [(2 * 0.2 + 0.3) / 3] * 2, rtol=1e-6)  # b (age 1), c (age 0)
    np.testing.assert_allclose(third, [(2 * 0.4 + 0.5) / 3] * 2, rtol=1e-6)
    policy.reset()
    policy.chunks = [torch.stack([a, b], 1)]
    np.testing.assert_allclose(policy.act(obs), [0.1, 0.1], rtol=1e-6)  # a new episode: nothing carried


def test_an_open_loop_chunk_is_predicted_every_chunk_size_steps():
    a, b, c, d = (torch.full((1, 2), v) for v in (0.1, 0.2, 0.3, 0.4))
    policy = KnownChunks([torch.stack([a, b], 1), torch.stack([c, d], 1)], temporal_ensemble=False)
    obs = {"state": np.zeros(2, np.float32)}
    actions = [float(policy.act(obs)[0]) for _ in range(4)]
    assert actions == pytest.approx([0.1, 0.2, 0.3, 0.4]) and policy.predictions == 2


@pytest.mark.parametrize("name", sorted(BC_POLICIES))
def test_a_model_file_gives_back_the_same_policy_and_refuses_damage(tmp_path, name):
    policy = BC_POLICIES[name].build(SPEC, SMALL, seed=3)
    policy.encoder.fit_state_normalizer(torch.randn(10, 2) * 5 + 1)
    path = tmp_path / "model.pt"
    digest = save_policy(path, policy, {"task": "toy"})
    model = load_policy(path)
    assert model.hash == digest and model.info == {"task": "toy"} and model.policy.kind == policy.kind
    for key, value in policy.state_dict().items():
        assert torch.equal(model.policy.state_dict()[key], value), key
    obs = {"state": np.array([0.5, -1.0], np.float32)}
    policy.reset(), model.policy.reset()
    np.testing.assert_array_equal(
        policy.act(obs, deterministic=True), model.policy.act(obs, deterministic=True)
    )

    (tmp_path / "short.pt").write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"policy model .*short\.pt: not a readable realrl policy file"):
        load_policy(tmp_path / "short.pt")
    with pytest.raises(ValueError, match=r"policy model .*none\.pt: no such file"):
        load_policy(tmp_path / "none.pt")
    data = torch.load(path, weights_only=True)
    data["weights"]["encoder.state_mean"] += 1.0  # edited weights
    torch.save(data, tmp_path / "edited.pt")
    with pytest.raises(
        ValueError, match=r"edited\.pt: its contents hash to [0-9a-f]+, the file says " + digest
    ):
        load_policy(tmp_path / "edited.pt")


def test_sample_steps_must_be_a_power_of_two_up_to_max_steps(tmp_path):
    policy = ShortcutBCPolicy.build(SPEC, SMALL)
    save_policy(tmp_path / "m.pt", policy, {})
    assert load_policy(tmp_path / "m.pt", config_changes={"sample_steps": 1}).policy.config.sample_steps == 1
    with pytest.raises(ValueError, match="sample_steps must be a power of two"):
        load_policy(tmp_path / "m.pt", config_changes={"sample_steps": 3})
    with pytest.raises(ValueError, match="sample_steps 16 is above max_steps 8"):
        load_policy(tmp_path / "m.pt", config_changes={"sample_steps": 16})
