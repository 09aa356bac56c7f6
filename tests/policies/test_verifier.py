"""Critic-ranked sampling (policies.verifier): best-of-N executes the candidate the critic scores
highest, a Gaussian's first candidate is its deterministic action, candidates stay in bounds,
policies that do not sample refuse, and critic files round-trip and refuse damage."""

import pytest
import torch
from torch import nn

from policies import PolicySpec
from policies.bc import ChunkBCPolicy, GaussianBCPolicy, ShortcutBCPolicy
from policies.configs import (
    BCPolicyConfig,
    CriticConfig,
    GaussianPolicyConfig,
    HybridGripperPolicyConfig,
    ResidualPolicyConfig,
)
from policies.critics import CriticEnsemble, make_critic, vectorized_state_dict
from policies.policy_files import load_critic, load_policy, save_critic, save_policy
from policies.residual import ResidualPolicy
from policies.sac import GaussianPolicy, HybridGripperPolicy, make_encoder
from policies.verifier import BestOfN, CriticVerifier

SPEC = PolicySpec(state_dim=3, action_dim=2)
TARGET = torch.tensor([0.3, -0.5])


class DistanceCritic(nn.Module):
    """Two 'members' scoring an action by minus its squared distance to TARGET (the second one
    shifted by 1: the mean ranks as each does)."""

    def forward(self, features, action, members=None):
        q = -(action - TARGET).pow(2).sum(-1)
        return torch.stack([q, q + 1.0])


def distance_verifier() -> CriticVerifier:
    config = CriticConfig(hidden=(8,), critics=2)
    return CriticVerifier(SPEC, config, make_encoder(SPEC, config, torch.device("cpu")), DistanceCritic())


def states(n: int) -> torch.Tensor:
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(1))


def sampling_policies(tmp_path) -> dict[str, object]:
    torch.manual_seed(0)  # the networks' initial weights: the same policies every run
    bc = BCPolicyConfig(hidden=(16,), sample_steps=2)
    base_path = tmp_path / "base.pt"
    digest = save_policy(base_path, GaussianBCPolicy.build(SPEC, bc, seed=3), {})
    residual = ResidualPolicyConfig(hidden=(16,), base=str(base_path), base_hash=digest, scale=0.2)
    policies = {
        "sac": GaussianPolicy.build(SPEC, GaussianPolicyConfig(hidden=(16,)), seed=1),
        "bc-gaussian": GaussianBCPolicy.build(SPEC, bc, seed=2),
        "bc-shortcut": ShortcutBCPolicy.build(SPEC, bc, seed=4),
        "residual": ResidualPolicy.build(SPEC, residual, seed=5),
    }
    with torch.no_grad():  # log-stds well above zero, so samples spread over the action box
        for name in ("sac", "bc-gaussian", "residual"):
            head = policies[name].actor if name != "bc-gaussian" else policies[name].head
            head.net[-1].bias[2:] = 0.5
            head.net[-1].weight.mul_(3.0)
    return policies


@pytest.mark.parametrize("kind", ["sac", "bc-gaussian", "bc-shortcut", "residual"])
def test_best_of_n_executes_the_critics_argmax(tmp_path, kind):
    policy = sampling_policies(tmp_path)[kind]
    best = BestOfN(policy, distance_verifier(), n=16)
    state = states(8)
    chosen = best.act_batch(state, {}, deterministic=True)
    # The same 16 candidates by hand (the stream is reseeded at reset), and the closest to TARGET.
    best.reset()
    candidates = policy.candidates(state, {}, 16, torch.Generator().manual_seed(BestOfN.NOISE_SEED))
    assert candidates.shape == (8, 16, 2) and bool((candidates.abs() <= 1.0).all())
    distance = (candidates - TARGET).pow(2).sum(-1)
    expected = candidates[torch.arange(8), distance.argmin(1)]
    assert torch.equal(chosen, expected)
    assert len({tuple(row) for row in candidates[0].tolist()}) == 16  # 16 different candidates
    # More candidates can only get closer: best-of-16 is at least as close as its first candidate.
    assert bool((distance.min(1).values <= distance[:, 0]).all())


@pytest.mark.parametrize("kind", ["sac", "bc-gaussian", "residual"])
def test_a_gaussians_first_candidate_is_its_deterministic_action(tmp_path, kind):
    policy = sampling_policies(tmp_path)[kind]
    state = states(5)
    candidates = policy.candidates(state, {}, 4, torch.Generator().manual_seed(0))
    policy.reset()
    torch.testing.assert_close(candidates[:, 0], policy.act_batch(state, {}, deterministic=True))
    one = BestOfN(policy, distance_verifier(), n=1)
    torch.testing.assert_close(one.act_batch(state, {}, deterministic=True), candidates[:, 0])


def test_policies_that_do_not_sample_refuse(tmp_path):
    chunk = ChunkBCPolicy.build(SPEC, BCPolicyConfig(hidden=(8,)))
    with pytest.raises(ValueError, match="a bc-chunk policy has one action per observation"):
        BestOfN(chunk, distance_verifier(), n=4)
    hybrid = HybridGripperPolicy.build(SPEC, HybridGripperPolicyConfig(hidden=(8,), gripper_hidden=(8,)))
    with pytest.raises(ValueError, match="a hybrid-gripper policy has one action"):
        hybrid.candidates(states(1), {}, 4, torch.Generator())
    with pytest.raises(ValueError, match="a hybrid-gripper policy has one action"):
        BestOfN(hybrid, distance_verifier(), n=4)
    with pytest.raises(ValueError, match="N >= 1"):
        BestOfN(chunk, distance_verifier(), n=0)
    other = GaussianPolicy.build(PolicySpec(state_dim=4, action_dim=2), GaussianPolicyConfig(hidden=(8,)))
    with pytest.raises(ValueError, match="the critic: the policy expects"):
        BestOfN(other, distance_verifier(), n=4)


def test_a_critic_file_scores_as_the_critic_it_was_saved_from(tmp_path):
    config = CriticConfig(hidden=(16, 16), critics=3)
    encoder = make_encoder(SPEC, config, torch.device("cpu"))
    encoder.fit_state_normalizer(states(64) * 4.0 + 1.0)  # the normalisation travels in the file
    critic = CriticVerifier(
        SPEC, config, encoder, make_critic("vectorized", encoder.output_dim, 2, (16, 16), 3)
    )
    path = tmp_path / "critic.pt"
    digest = save_critic(path, critic, {"task": "toy"})
    loaded = load_critic(path)
    actions = torch.rand(6, 5, 2, generator=torch.Generator().manual_seed(2)) * 2 - 1
    expected = critic.critic(critic.encoder(states(6)).repeat_interleave(5, 0), actions.reshape(30, 2))
    scores = loaded.critic.scores(states(6), {}, actions)
    torch.testing.assert_close(scores, expected.mean(0).reshape(6, 5))
    assert loaded.hash == digest and loaded.info == {"task": "toy"}
    assert isinstance(loaded.critic.critic, CriticEnsemble)
    assert not any(p.requires_grad for p in loaded.critic.parameters())

    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"critic model .*critic\.pt: not a readable realrl critic file"):
        load_critic(path)
    policy_file = tmp_path / "policy.pt"
    save_policy(policy_file, GaussianPolicy.build(SPEC, GaussianPolicyConfig(hidden=(8,))), {})
    with pytest.raises(ValueError, match="format 'realrl-policy/1', expected 'realrl-critic/1'"):
        load_critic(policy_file)
    with pytest.raises(ValueError, match=r"critic model .*none\.pt: no such file"):
        load_critic(tmp_path / "none.pt")


def test_a_residual_over_a_chunked_base_steps_the_base_once_per_action(tmp_path):
    """The base's acting state (a chunk plan, temporally ensembled) advances once per control step,
    however many candidates are drawn: a fresh residual's first candidate is the base's own action."""
    base = ChunkBCPolicy.build(SPEC, BCPolicyConfig(hidden=(16,), chunk_size=3), seed=4)
    path = tmp_path / "chunk.pt"
    digest = save_policy(path, base, {})
    config = ResidualPolicyConfig(hidden=(16,), base=str(path), base_hash=digest)
    residual = ResidualPolicy.build(SPEC, config, seed=5)
    alone = load_policy(path).policy
    best = BestOfN(residual, distance_verifier(), n=8)
    best.reset(), alone.reset()
    generator = torch.Generator().manual_seed(0)
    for t in range(5):
        state = states(3) + t  # a different observation every step
        expected = alone.act_batch(state, {}, deterministic=True)
        candidates = residual.candidates(state, {}, 8, generator)
        torch.testing.assert_close(candidates[:, 0], expected)  # zero-initialised residual: the base
        assert bool(((candidates - expected.unsqueeze(1)).abs() <= config.scale + 1e-6).all())


def test_the_vectorised_layout_of_a_loop_ensemble_scores_the_same():
    generator = torch.Generator().manual_seed(3)
    features, actions = torch.randn(7, 5, generator=generator), torch.rand(7, 2, generator=generator) * 2 - 1
    for layer_norm in (True, False):
        torch.manual_seed(1)
        loop = make_critic("loop", 5, 2, (16, 8), 3, layer_norm)
        with torch.no_grad():  # LayerNorm affines away from 1 and 0, so a swapped layout shows
            for parameter in loop.parameters():
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.3)
        vectorized = make_critic("vectorized", 5, 2, (16, 8), 3, layer_norm)
        vectorized.load_state_dict(vectorized_state_dict(loop))
        with torch.no_grad():
            torch.testing.assert_close(vectorized(features, actions), loop(features, actions))
