import math

import pytest
import torch

from learner.augment import random_shift
from learner.batch import Batch
from learner.sac import (
    SACAlgorithm,
    SACConfig,
    actor_loss,
    critic_loss,
    critic_target,
    q_filtered_bc_loss,
    temperature_loss,
)
from policies import PolicySpec, build_policy
from policies.critics import CriticEnsemble, LoopCriticEnsemble
from policies.networks import TanhGaussianActor


def make_sac(config, state_dim, action_dim, cameras=(), image_size=24, seed=0) -> SACAlgorithm:
    return SACAlgorithm(config, PolicySpec(state_dim, action_dim, tuple(cameras), image_size), seed=seed)


def random_batch(n=32, state_dim=6, action_dim=3, cameras=(), size=24, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)

    def frames():
        return {c: torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=g) for c in cameras}

    return Batch(
        state=torch.randn(n, state_dim, generator=g),
        action=torch.rand(n, action_dim, generator=g) * 2 - 1,
        reward=torch.rand(n, generator=g),
        discount=torch.full((n,), 0.99),
        terminated=(torch.rand(n, generator=g) < 0.2).float(),
        truncated=torch.zeros(n),
        next_state=torch.randn(n, state_dim, generator=g),
        images=frames(),
        next_images=frames(),
    )


def small_config(**overrides) -> SACConfig:
    return SACConfig(**{"hidden": (32, 32), "critics": 4, "encoder": "conv", **overrides})


# -- losses against hand-computed numbers ---------------------------------------------------------
def test_critic_target_by_hand():
    next_q = torch.tensor([[1.0, 5.0, 2.0], [3.0, 4.0, 0.0]])  # min over the subset: [1, 4, 0]
    log_prob = torch.tensor([0.5, -1.0, 0.0])
    reward = torch.tensor([1.0, 0.0, 2.0])
    discount = torch.tensor([0.99, 0.99**3, 0.99])
    mask = torch.tensor([1.0, 1.0, 0.0])
    target = critic_target(next_q, log_prob, reward, discount, mask, torch.tensor(0.1), backup_entropy=True)
    expected = [1 + 0.99 * (1 - 0.05), 0.99**3 * (4 + 0.1), 2.0]
    torch.testing.assert_close(target, torch.tensor(expected))
    no_backup = critic_target(
        next_q, log_prob, reward, discount, mask, torch.tensor(0.1), backup_entropy=False
    )
    torch.testing.assert_close(no_backup, torch.tensor([1 + 0.99, 0.99**3 * 4, 2.0]))


def test_terminal_ignores_garbage_next_values():
    next_q = torch.tensor([[float("nan"), 1.0]])
    target = critic_target(
        next_q,
        torch.zeros(2),
        torch.tensor([3.0, 0.0]),
        torch.full((2,), 0.9),
        torch.tensor([0.0, 1.0]),
        torch.tensor(0.1),
        True,
    )
    torch.testing.assert_close(target, torch.tensor([3.0, 0.9]))


def test_critic_and_actor_losses_by_hand():
    q = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert critic_loss(q, torch.tensor([1.0, 1.0])).item() == pytest.approx((0 + 1 + 4 + 9) / 4)
    q = torch.tensor([[1.0, 3.0], [3.0, 5.0]])  # mean over critics: [2, 4]
    loss = actor_loss(q, torch.tensor([0.1, 0.2]), torch.tensor(0.5))
    assert loss.item() == pytest.approx(((0.05 - 2) + (0.1 - 4)) / 2)
    # alpha = 2, entropy = -mean(log_prob) = 1, target -1.5: 2 * (1 + 1.5)
    t_loss = temperature_loss(torch.tensor(math.log(2.0)), torch.tensor([-1.0, -1.0]), -1.5)
    assert t_loss.item() == pytest.approx(5.0)
    # Q-filter: only row 0's stored action is valued above the policy's (2 > 1; row 1: 3 < 4).
    mean_action = torch.tensor([[0.5, 0.0], [1.0, 1.0]])
    data_action = torch.tensor([[0.0, -1.0], [-1.0, -1.0]])
    bc = q_filtered_bc_loss(mean_action, data_action, torch.tensor([1.0, 4.0]), torch.tensor([2.0, 3.0]))
    assert bc.item() == pytest.approx((0.25 + 1.0) / 2)


def test_shape_bugs_are_caught():
    with pytest.raises(AssertionError):
        critic_loss(torch.zeros(2, 4), torch.zeros(4, 1))  # (B,1) against (B,): the classic bug
    with pytest.raises(AssertionError):
        critic_target(
            torch.zeros(2, 4),
            torch.zeros(4, 1),
            torch.zeros(4),
            torch.zeros(4),
            torch.zeros(4),
            torch.tensor(0.1),
            True,
        )


# -- networks ---------------------------------------------------------------------------------------
def test_vectorized_ensemble_matches_the_loop():
    torch.manual_seed(0)
    loop = LoopCriticEnsemble(5, 2, (16, 16), ensemble=3)
    vec = CriticEnsemble(5, 2, (16, 16), ensemble=3)
    linear_layers = [0, 3, 6]  # Linear, LayerNorm, ReLU per hidden layer, then the output Linear
    norm_layers = [1, 4]
    with torch.no_grad():
        for e, member in enumerate(loop.members):
            for i in linear_layers:
                vec.net[i].weight[e] = member[i].weight.T
                vec.net[i].bias[e, 0] = member[i].bias
            for i in norm_layers:
                member[i].weight.uniform_(0.5, 1.5)
                vec.net[i].weight[e, 0] = member[i].weight
                vec.net[i].bias[e, 0] = member[i].bias
    features, action = torch.randn(7, 5), torch.randn(7, 2)
    torch.testing.assert_close(vec(features, action), loop(features, action))
    assert vec(features, action).shape == (3, 7)
    # Evaluating a subset computes exactly those members (the target's random M of E), in that order.
    full = vec(features, action)
    for net in (vec, loop):
        torch.testing.assert_close(net(features, action, [2, 0]), full[[2, 0]])


def test_actor_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    actor = TanhGaussianActor(4, 2, (16,))
    features = torch.randn(5, 4)
    action, log_prob = actor(features, generator=torch.Generator().manual_seed(1))
    mean, log_std = actor.distribution(features)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1),
        [torch.distributions.TanhTransform(cache_size=1)],
    )
    torch.testing.assert_close(
        log_prob, dist.log_prob(action.clamp(-1 + 1e-6, 1 - 1e-6)), atol=2e-3, rtol=1e-3
    )
    assert action.abs().max() <= 1.0


def test_random_shift_is_a_crop_of_the_padded_image():
    images = torch.rand(6, 3, 10, 10)
    pad = 2
    shifted = random_shift(images, pad, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (pad,) * 4, mode="replicate")
    offsets = set()
    for i in range(6):
        matches = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(shifted[i], padded[i, :, dy : dy + 10, dx : dx + 10])
        ]
        assert matches, f"image {i} is not an integer crop"
        offsets.add(matches[0])
    assert len(offsets) > 1  # independent shifts per image


# -- the agent --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bc_weight", [0.0, 1.0])
def test_actor_update_leaves_critic_untouched_and_vice_versa(bc_weight):
    agent = make_sac(small_config(bc_weight=bc_weight), 6, 3)
    batch = random_batch()
    critic_before = [p.detach().clone() for p in agent.critic.parameters()]
    critic_grads = [p.grad for p in agent.critic.parameters()]
    _, features = agent.update_critic(batch)
    after_critic = [p.detach().clone() for p in agent.critic.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, after_critic, strict=True))
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    critic_grads = [None if p.grad is None else p.grad.clone() for p in agent.critic.parameters()]
    agent.update_actor(features, batch.action)
    for p, grad, weight in zip(agent.critic.parameters(), critic_grads, after_critic, strict=True):
        assert torch.equal(p, weight)  # the actor step moved no critic weight
        assert (p.grad is None and grad is None) or torch.equal(p.grad, grad)  # nor its gradients
    assert any(not torch.equal(a, p) for a, p in zip(actor_before, agent.actor.parameters(), strict=True))
    # And a critic update leaves the actor's weights alone.
    actor_now = [p.detach().clone() for p in agent.actor.parameters()]
    agent.update_critic(batch)
    assert all(torch.equal(a, p) for a, p in zip(actor_now, agent.actor.parameters(), strict=True))


class PeakedCritic(torch.nn.Module):
    """Q_e(s, a) = -|a - best|^2 for 4 members: the stored actions `best` are the argmax."""

    def __init__(self, best: torch.Tensor) -> None:
        super().__init__()
        self.best = best

    def forward(self, features, action):
        return -((action - self.best) ** 2).sum(-1).expand(4, -1)


def test_bc_weight_pulls_the_actor_mean_towards_the_stored_actions():
    # A critic that values every stored action above the policy's keeps every row in the Q-filter,
    # so with a large weight the actor step moves the mean action towards the batch's actions.
    batch = random_batch()
    distances = {}
    for weight in (0.0, 100.0):
        agent = make_sac(small_config(bc_weight=weight, actor_lr=1e-2), 6, 3)
        features = agent.encoder(batch.state, None).detach()
        agent.critic = PeakedCritic(batch.action)
        metrics, _ = agent.update_actor(features, batch.action)
        mean = torch.tanh(agent.actor.distribution(features)[0]).detach()
        distances[weight] = float(((mean - batch.action) ** 2).sum(-1).mean())
        assert ("bc_loss" in metrics) == (weight > 0)
    assert distances[100.0] < distances[0.0]


def test_pixel_encoder_is_trained_by_the_critic_only():
    agent = make_sac(small_config(image_pad=2), 6, 3, cameras=("front", "wrist"), image_size=24)
    batch = random_batch(n=8, cameras=("front", "wrist"))
    encoder_before = [p.detach().clone() for p in agent.encoder.parameters()]
    _, features = agent.update_critic(batch)
    moved = [not torch.equal(a, p) for a, p in zip(encoder_before, agent.encoder.parameters(), strict=True)]
    assert all(moved)
    assert features.shape == (8, 64 + 2 * 50)
    encoder_now = [p.detach().clone() for p in agent.encoder.parameters()]
    agent.update_actor(features, batch.action)
    assert all(torch.equal(a, p) for a, p in zip(encoder_now, agent.encoder.parameters(), strict=True))


def test_losses_stay_finite_with_nan_garbage_after_terminals():
    agent = make_sac(small_config(), 6, 3)
    batch = random_batch()
    batch.terminated[:5] = 1.0
    batch.next_state[:5] = float("nan")
    metrics = agent.update(batch)
    assert all(torch.isfinite(v).all() for v in metrics.values())
    assert metrics["nonfinite_streak"].item() == 0


def test_nonfinite_loss_skips_the_update():
    agent = make_sac(small_config(), 6, 3)
    bad = random_batch()
    bad.reward[3] = float("nan")
    before = {k: v.clone() for k, v in agent.state_dict().items() if "critic" in k or "encoder" in k}
    metrics = agent.update(bad)
    assert metrics["nonfinite_streak"].item() >= 1
    for name, value in agent.state_dict().items():
        if name in before and not name.startswith("target"):
            assert torch.equal(value, before[name]), name
        assert torch.isfinite(value).all(), name
    # The fused Adam kernel skipped the whole step: no moment or step count moved either.
    critic_state = agent.critic_optimizer.state[agent.critic_params[0]]
    assert critic_state["step"].item() == 0 and not critic_state["exp_avg"].any()
    agent.update(random_batch(seed=1))
    assert critic_state["step"].item() == 1
    assert agent.nonfinite_streak.item() == 0 and agent.nonfinite_total.item() >= 1


@pytest.mark.parametrize("cameras", [(), ("front",)])
def test_two_runs_with_one_seed_are_identical(cameras):
    def run():
        agent = make_sac(small_config(), 6, 3, cameras=cameras, image_size=24, seed=7)
        losses = []
        for i in range(50 if not cameras else 10):
            metrics = agent.update(random_batch(n=16, cameras=cameras, seed=i), utd=2)
            losses.append([metrics["critic_loss"].item(), metrics["actor_loss"].item()])
        return losses

    assert run() == run()


def test_act_is_bounded_and_policy_weights_exclude_critics():
    agent = make_sac(small_config(), 6, 3)
    action = agent.policy.act({"state": torch.randn(6).numpy()})
    assert action.shape == (3,) and action.dtype.name == "float32" and abs(action).max() <= 1
    assert not any(k.startswith(("critic", "target")) for k in agent.policy.state_dict())
    assert sorted({k.split(".")[0] for k in agent.policy.state_dict()}) == ["actor", "encoder"]


@pytest.mark.parametrize("cameras", [(), ("front",)])
def test_policy_weights_over_the_wire_make_an_actor_side_agent_act_identically(cameras):
    """What the learner pushes (policy + encoder, packed into one frame) is all an actor process
    needs: after loading it, its deterministic actions equal the learner's; a mismatched model is
    refused by name."""
    from formats.wire import decode, encode, pack_weights, unpack_weights

    learner = make_sac(small_config(), 6, 3, cameras=cameras, image_size=24, seed=1)
    for i in range(5):  # move the weights away from their initialisation
        learner.update(random_batch(n=16, cameras=cameras, seed=i))
    learner.fit_state_normalizer(torch.randn(100, 6) * 3 + 1)
    tensors = {name: t.detach().cpu().numpy() for name, t in learner.policy.state_dict().items()}
    manifest, blob = pack_weights(tensors)
    message = decode(encode("weights", {"version": 5, "tensors": manifest}, {"blob": blob}))
    actor = build_policy(learner.policy.describe(), seed=99)  # what an actor process builds
    assert type(actor) is type(learner.policy) and not hasattr(actor, "critic")
    actor.load_weights(unpack_weights(message.header["tensors"], message.arrays["blob"]))
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        obs = {"state": torch.randn(6, generator=generator).numpy()}
        if cameras:
            obs["images"] = {"front": torch.randint(0, 256, (24, 24, 3), dtype=torch.uint8).numpy()}
        assert (actor.act(obs, deterministic=True) == learner.policy.act(obs, deterministic=True)).all()
    with pytest.raises(ValueError, match="missing"):
        actor.load_weights({k: v for k, v in tensors.items() if not k.startswith("actor.")})
    wider = make_sac(small_config(hidden=(64, 64)), 6, 3, cameras=cameras, image_size=24)
    with pytest.raises(ValueError, match="shape"):
        wider.policy.load_weights(tensors)


def test_state_normalizer_standardises_with_fitted_statistics():
    agent = make_sac(small_config(), 3, 2)
    states = torch.tensor([[1.0, 10.0, 5.0], [3.0, 30.0, 5.0], [5.0, 50.0, 5.0]])  # dim 2 is constant
    agent.fit_state_normalizer(states)
    torch.testing.assert_close(agent.encoder.state_mean, torch.tensor([3.0, 30.0, 5.0]))
    torch.testing.assert_close(agent.encoder.state_std, torch.tensor([2.0, 20.0, 0.01]))  # floored
    features = agent.encoder(torch.tensor([[3.0, 50.0, 5.5], [3.0, 30.0, 9.0]]))
    torch.testing.assert_close(features, torch.tensor([[0.0, 1.0, 10.0], [0.0, 0.0, 10.0]]))  # clipped
    torch.testing.assert_close(agent.target_encoder.state_std, agent.encoder.state_std)
    assert bool(agent.encoder.normalizer_fitted)
    # The statistics travel with the weights an actor receives and with checkpoints.
    assert torch.equal(agent.policy.state_dict()["encoder.state_mean"], agent.encoder.state_mean)
    other = make_sac(small_config(), 3, 2, seed=5)
    other.load_state_dict(agent.state_dict())
    assert torch.equal(other.encoder.state_std, agent.encoder.state_std)


def test_conv_encoder_keeps_rlpd_resolution_for_larger_images():
    from policies.encoders import ConvEncoder, conv_strides

    assert conv_strides(64) == conv_strides(84) == (2, 1, 1, 1)  # RLPD / DrQ
    assert conv_strides(128) == (2, 2, 1, 1) and conv_strides(256) == (2, 2, 2, 1)
    # 128 -> 63 -> 31 -> 29 -> 27: about the 25x25 map of RLPD's trunk at 64 px (64 -> 31 -> 29 -> 27 -> 25).
    assert ConvEncoder(128).head[0].in_features == 32 * 27 * 27
    assert ConvEncoder(64).head[0].in_features == 32 * 25 * 25


def test_bf16_image_trunk_matches_float32_within_bf16_precision():
    from policies.encoders import ObservationEncoder

    torch.manual_seed(0)
    fp32 = ObservationEncoder(5, ("front", "wrist"), 32)
    bf16 = ObservationEncoder(5, ("front", "wrist"), 32, bf16=True)
    bf16.load_state_dict(fp32.state_dict())
    state, images = torch.randn(6, 5), torch.rand(2, 6, 3, 32, 32)
    out32, out16 = fp32(state, images), bf16(state, images)
    assert out16.dtype == torch.float32 and out16.shape == out32.shape == (6, 64 + 2 * 50)
    # bf16 keeps 8 bits of mantissa: features in [-1, 1] agree to about 1e-2, not exactly.
    torch.testing.assert_close(out16, out32, atol=3e-2, rtol=0)
    assert not torch.equal(out16, out32)
