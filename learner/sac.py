"""RLPD soft actor-critic, state or pixels: the algorithm around a `policies.GaussianPolicy`. The
policy owns what acting needs (encoder, actor); `SACAlgorithm` owns the critics, the targets, the
temperature, the optimisers and the update. Losses are small named functions (testable without an
optimiser); `SACAlgorithm.update` only chains critic -> actor -> temperature updates.

RLPD facts (DESIGN.md): ensemble of 10 critics with LayerNorm, target = min over a random subset
of 2, actor loss on the mean over all critics, UTD critic updates per actor/temperature update,
target entropy -|A|/2. Pixel variant: DrQ random shift; the encoder is trained by the critic only
and the actor sees detached features. No host syncs in `update`: metrics stay tensors."""

from __future__ import annotations

import copy
import math
from dataclasses import fields

import torch
from torch import nn

from formats.episodes import Episode
from learner.augment import random_shift
from learner.batch import Batch
from learner.configs import SACConfig
from policies import PolicySpec
from policies.configs import CriticConfig, GaussianPolicyConfig
from policies.critics import make_critic
from policies.sac import GaussianPolicy, make_actor, make_encoder, stack_images
from policies.verifier import CriticVerifier

# `realrl bench learner` on CPU (E=10, B=256, 256x2, fused Adam): 1 thread loop 50 ms vs vectorised
# 53 ms per update, 2 threads 35 vs 34 ms (a tie). CUDA: vectorised, as batched matmuls fill the GPU.
PREFERRED_CRITIC_IMPL = {"cpu": "loop", "cuda": "vectorized"}


# -- losses --------------------------------------------------------------------------------------
def critic_target(
    next_q: torch.Tensor,
    next_log_prob: torch.Tensor,
    reward: torch.Tensor,
    discount: torch.Tensor,
    mask: torch.Tensor,
    alpha: torch.Tensor,
    backup_entropy: bool,
) -> torch.Tensor:
    """y = r + discount * mask * (min_subset Q'(s', a') - alpha * log pi(a'|s')); next_q is (M, B)."""
    batch = reward.shape[0]
    assert next_q.ndim == 2 and next_q.shape[1] == batch, next_q.shape
    assert next_log_prob.shape == reward.shape == discount.shape == mask.shape == (batch,)
    next_v = next_q.min(dim=0).values
    if backup_entropy:
        next_v = next_v - alpha * next_log_prob
    # where, not a product: after a terminal, next_obs may be garbage (NaN * 0 is still NaN).
    target = reward + discount * torch.where(mask > 0, next_v, torch.zeros_like(next_v))
    assert target.shape == (batch,)
    return target


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared TD error over every critic of the ensemble; q is (E, B), target (B,)."""
    assert q.ndim == 2 and target.shape == (q.shape[1],), (q.shape, target.shape)
    return ((q - target.unsqueeze(0)) ** 2).mean()


def actor_loss(q: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """E[alpha * log pi(a|s) - mean_e Q_e(s, a)]; q is (E, B)."""
    assert q.ndim == 2 and log_prob.shape == (q.shape[1],), (q.shape, log_prob.shape)
    return (alpha * log_prob - q.mean(dim=0)).mean()


def q_filtered_bc_loss(
    mean_action: torch.Tensor, data_action: torch.Tensor, q_policy: torch.Tensor, q_data: torch.Tensor
) -> torch.Tensor:
    """Mean over rows of |mean_action - data_action|^2, counting only rows whose stored action the
    critics value above the policy's (Nair et al. 2018's Q-filter); q_* are (B,), detached."""
    assert mean_action.shape == data_action.shape and q_policy.shape == q_data.shape == (len(mean_action),)
    keep = (q_data > q_policy).to(mean_action.dtype)
    return (keep * ((mean_action - data_action) ** 2).sum(-1)).mean()


def temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """alpha * (entropy - target): alpha grows while the policy's entropy is below the target."""
    assert log_prob.ndim == 1
    return log_alpha.exp() * (-log_prob.detach() - target_entropy).mean()


# -- optimiser step that can never write non-finite weights ---------------------------------------
def make_adam(params, lr: float) -> torch.optim.Adam:
    """Fused Adam: one kernel for every parameter, and it honours `found_inf` (see guarded_step)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def guarded_step(optimizer: torch.optim.Adam, params: list[nn.Parameter], grads, loss: torch.Tensor):
    """Apply `grads` unless `loss` or any gradient is non-finite, without a host sync. This is the
    mechanism torch's AMP GradScaler uses: one fused kernel checks every gradient and raises a
    device-side flag, and the fused Adam kernel skips the whole step (weights, moments and step
    count untouched) when the flag is set. Returns the finite flag as a 0-d bool tensor."""
    found_inf = (~torch.isfinite(loss.detach())).float().reshape(1)
    torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, found_inf.new_ones(1))
    for param, grad in zip(params, grads, strict=True):
        param.grad = grad
    optimizer.grad_scale, optimizer.found_inf = None, found_inf.reshape(())
    optimizer.step()
    del optimizer.grad_scale, optimizer.found_inf
    return found_inf[0] == 0


class SACAlgorithm(nn.Module):
    """RLPD SAC: trains `self.policy` (a GaussianPolicy) with an ensemble of critics."""

    name = "sac"
    policy_class = GaussianPolicy

    def __init__(
        self, config: SACConfig, spec: PolicySpec, device: str | torch.device = "cpu", seed: int = 0
    ) -> None:
        super().__init__()
        self.config, self.spec = config, spec
        self.cameras = spec.cameras
        self.device = torch.device(device)
        impl = config.critic_impl
        if impl == "auto":
            impl = PREFERRED_CRITIC_IMPL.get(self.device.type, "vectorized")
        policy_config = self.policy_config(config)
        continuous_dim = self.continuous_action_dim(spec)
        torch.manual_seed(seed)
        # Built in this order (encoder, critic, actor) so one seed gives the same initial weights.
        encoder = make_encoder(spec, policy_config, self.device)
        features = encoder.output_dim
        self.critic = make_critic(
            impl, features, continuous_dim, config.hidden, config.critics, config.critic_layer_norm
        )
        actor = self.make_actor(features, continuous_dim, policy_config)
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(config.init_temperature)))
        self.target_entropy = (
            config.target_entropy
            if config.target_entropy is not None
            else -config.target_entropy_per_dim * continuous_dim
        )
        self.policy = self.make_policy(spec, policy_config, encoder, actor, seed)
        self.to(self.device)
        self.critic_params = [
            p for p in [*self.encoder.parameters(), *self.critic.parameters()] if p.requires_grad
        ]
        self.actor_params = list(self.actor.parameters())
        self.critic_optimizer = make_adam(self.critic_params, config.critic_lr)
        self.actor_optimizer = make_adam(self.actor_params, config.actor_lr)
        self.temperature_optimizer = make_adam([self.log_alpha], config.temperature_lr)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        # On the host, so drawing needs no device sync: target-critic subsets and the shifts' orders.
        self.subset_generator = torch.Generator().manual_seed(seed + 2)
        self.nonfinite_streak = torch.zeros((), dtype=torch.long, device=self.device)
        self.nonfinite_total = torch.zeros((), dtype=torch.long, device=self.device)
        self._update_finite = torch.ones((), dtype=torch.bool, device=self.device)

    @staticmethod
    def continuous_action_dim(spec: PolicySpec) -> int:
        return spec.action_dim

    @staticmethod
    def policy_config(config: SACConfig) -> GaussianPolicyConfig:
        """The acting half of the flat `--agent.*` flags."""
        return GaussianPolicyConfig(
            hidden=config.hidden,
            log_std_min=config.log_std_min,
            log_std_max=config.log_std_max,
            encoder=config.encoder,
            encoder_hash=config.encoder_hash,
            pretrained_encoder=config.pretrained_encoder,
            image_bf16=config.image_bf16,
        )

    def make_actor(self, features: int, action_dim: int, policy_config) -> nn.Module:
        return make_actor(features, action_dim, policy_config)

    def make_policy(self, spec, policy_config, encoder, actor, seed: int) -> GaussianPolicy:
        return GaussianPolicy(spec, policy_config, encoder, actor, seed, self.device)

    def sample_action(
        self, features: torch.Tensor, base_action: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy's action (B, A) at these features, with gradients, and its log-probability (B,)
        (`base_action`: a residual's input, unused here)."""
        return self.actor(features, generator=self.generator)

    @classmethod
    def relabel_demo(cls, episode: Episode) -> Episode:
        """Demo actions as this algorithm stores them (SAC: as recorded)."""
        return episode

    def verifier(self) -> CriticVerifier | None:
        """The critic as a test-time verifier of whole actions (best-of-N), sharing this algorithm's
        encoder and ensemble: each checkpoint saves it as critic.pt. None where the critic does not
        score whole actions."""
        acting = SACAlgorithm.policy_config(self.config)
        config = CriticConfig(
            **{f.name: getattr(acting, f.name) for f in fields(acting)},
            critics=self.config.critics,
            critic_layer_norm=self.config.critic_layer_norm,
        )
        return CriticVerifier(self.spec, config, self.encoder, self.critic)

    @property
    def encoder(self):
        return self.policy.encoder

    @property
    def actor(self):
        return self.policy.actor

    def state_normalizer_fitted(self) -> bool:
        return bool(self.encoder.normalizer_fitted)  # a host sync: call it once, not per update

    def generators(self) -> dict[str, torch.Generator]:
        """Every random stream by name (checkpoints save and restore them all)."""
        return {
            "generator": self.generator,
            "act_generator": self.policy.act_generator,
            "subset_generator": self.subset_generator,
        }

    def fit_state_normalizer(self, states: torch.Tensor) -> None:
        """Standardise the state with these samples' statistics, online and target encoder alike."""
        self.encoder.fit_state_normalizer(states)
        self.target_encoder.fit_state_normalizer(states)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    # -- encoding ---------------------------------------------------------------------------
    def _images(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """uint8 {camera: (N, H, W, 3)} -> float (K, N, 3, H, W), DrQ-shifted per image."""
        stacked = stack_images(images, self.cameras)
        if self.config.image_pad:
            stacked = random_shift(stacked, self.config.image_pad, self.subset_generator)
        return stacked.reshape(len(self.cameras), -1, *stacked.shape[1:])

    def _maps(self, maps: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """A frozen trunk's cached fp16 maps, per camera (N, C, h, w), each frame's maps shifted by
        up to `map_shift` cells (the stand-in for DrQ's shift of the frames; shifted in fp16, which
        halves the bytes moved; the heads read fp16 and convert as they lay the maps out)."""
        shift = self.config.map_shift
        return [random_shift(maps[c], shift, self.subset_generator) for c in self.cameras]

    def _encoder_inputs(
        self, state: torch.Tensor, images: dict[str, torch.Tensor], maps: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor] | None]:
        """(state, pixels, maps) for the encoder: augmented frames, or a frozen trunk's cached maps."""
        if not self.cameras:
            return state, None, None
        if self.encoder.frozen_trunk:
            return state, None, self._maps(maps)
        return state, self._images(images), None

    def _encode_pair(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Online features of obs (with grad) and of next_obs (without), and the target encoder's
        features of next_obs. Only the obs pass is differentiated, so the encoder's backward covers
        N rows, not 2N. A frozen trunk's maps come cached with the batch."""
        obs = self._encoder_inputs(batch.state, batch.images, batch.maps)
        next_obs = self._encoder_inputs(batch.next_state, batch.next_images, batch.next_maps)
        features = self.encoder(*obs)
        with torch.no_grad():
            next_features = self.encoder(*next_obs)
            next_target_features = self.target_encoder(*next_obs)
        return features, next_features, next_target_features

    # -- updates ----------------------------------------------------------------------------
    def update_critic(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One critic step (and the encoder, through it); returns metrics and the detached obs
        features for the actor step."""
        features, next_features, next_target_features = self._encode_pair(batch)
        metrics = self._critic_step(batch, features, next_features, next_target_features)
        self._soft_update_targets()
        return metrics, features.detach()

    def _critic_step(
        self, batch: Batch, features: torch.Tensor, next_features: torch.Tensor, next_target_features
    ) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            next_action, next_log_prob = self.sample_action(next_features, batch.next_base_action)
            # Only the M sampled target critics are evaluated (RLPD subsamples the parameters too);
            # drawn on the host so the loop ensemble can index its modules without a device sync.
            members = torch.randperm(self.config.critics, generator=self.subset_generator)
            next_q = self.target_critic(
                next_target_features, next_action, members[: self.config.critic_subsample].tolist()
            )
            target = critic_target(
                next_q,
                next_log_prob,
                batch.reward,
                batch.discount,
                batch.mask,
                self.alpha,
                self.config.backup_entropy,
            )
        q = self.critic(features, batch.action)
        loss = critic_loss(q, target)
        grads = torch.autograd.grad(loss, self.critic_params, allow_unused=True)
        grads = [
            torch.zeros_like(p) if g is None else g for p, g in zip(self.critic_params, grads, strict=True)
        ]
        self._track_finite(guarded_step(self.critic_optimizer, self.critic_params, grads, loss))
        return {"critic_loss": loss.detach(), "q_mean": q.detach().mean()}

    def update_actor(
        self, features: torch.Tensor, data_action: torch.Tensor, base_action: torch.Tensor | None = None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        action, log_prob = self.sample_action(features, base_action)
        q = self.critic(features, action)
        loss = actor_loss(q, log_prob, self.alpha.detach())
        metrics = {}
        if self.config.bc_weight:
            mean_action = torch.tanh(self.actor.distribution(features)[0])
            with torch.no_grad():
                q_data = self.critic(features, data_action).mean(dim=0)
            bc = q_filtered_bc_loss(mean_action, data_action, q.detach().mean(dim=0), q_data)
            loss = loss + self.config.bc_weight * bc
            metrics["bc_loss"] = bc.detach()
        # Gradients w.r.t. the actor only: the critic's .grad is never touched by the actor loss.
        grads = torch.autograd.grad(loss, self.actor_params)
        self._track_finite(guarded_step(self.actor_optimizer, self.actor_params, grads, loss))
        entropy = -log_prob.detach().mean()
        return {"actor_loss": loss.detach(), "entropy": entropy, **metrics}, log_prob.detach()

    def update_temperature(self, log_prob: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
        grads = torch.autograd.grad(loss, [self.log_alpha])
        self._track_finite(guarded_step(self.temperature_optimizer, [self.log_alpha], grads, loss))
        return {"temperature_loss": loss.detach(), "temperature": self.alpha.detach()}

    def update(self, batch: Batch, utd: int = 1, train_actor: bool = True) -> dict[str, torch.Tensor]:
        """`utd` critic updates on equal slices of `batch`, then one actor and one temperature update
        on the last slice (RLPD), unless not `train_actor` (a critic warm-up). Returns detached metric
        tensors (read them only when logging). An update with any non-finite loss counts towards
        `nonfinite_streak`."""
        self._update_finite = torch.ones((), dtype=torch.bool, device=self.device)
        for minibatch in batch.split(utd):
            metrics, features = self.update_critic(minibatch)
        if train_actor:
            data_action = minibatch.action[:, : self.continuous_action_dim(self.spec)]
            actor_metrics, log_prob = self.update_actor(features, data_action, minibatch.base_action)
            metrics = {**metrics, **actor_metrics, **self.update_temperature(log_prob)}
        self.nonfinite_streak = torch.where(self._update_finite, 0, self.nonfinite_streak + 1)
        self.nonfinite_total = self.nonfinite_total + (~self._update_finite).long()
        return {**metrics, "nonfinite_streak": self.nonfinite_streak.clone()}

    def _track_finite(self, finite: torch.Tensor) -> None:
        self._update_finite = self._update_finite & finite

    @torch.no_grad()
    def _soft_update_targets(self) -> None:
        targets = [*self.target_encoder.parameters(), *self.target_critic.parameters()]
        online = [*self.encoder.parameters(), *self.critic.parameters()]
        # A frozen trunk's target copy equals it for good: no lerp over its (ResNet: 11 M) weights.
        pairs = [(t, o) for t, o in zip(targets, online, strict=True) if o.requires_grad]
        torch._foreach_lerp_([t for t, _ in pairs], [o for _, o in pairs], self.config.tau)

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser by name (checkpoints save and restore them all)."""
        return {
            "critic": self.critic_optimizer,
            "actor": self.actor_optimizer,
            "temperature": self.temperature_optimizer,
        }
