"""Behaviour-cloning policies, trained on demos by learner.bc and run by actors (alone, or frozen as
the base under a residual): a tanh-Gaussian MLP (`bc-gaussian`, the baseline), action chunking
(`bc-chunk`: the next k actions per observation, executed open-loop or temporally ensembled) and a
shortcut flow policy (`bc-shortcut`, SORL: flow matching plus self-consistency across step sizes, so
it samples in 1 to `max_steps` Euler steps and keeps the modes of multimodal demos apart). Each
holds the same observation encoder as the SAC policy; the losses live here next to the networks
they train (learner.bc owns the data and the optimiser)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from policies.base import PolicySpec
from policies.configs import BCPolicyConfig
from policies.encoders import ObservationEncoder
from policies.networks import TanhGaussianActor, mlp
from policies.sac import EncodedPolicy, make_encoder

ACTION_EDGE = 1.0 - 1e-3  # demo actions are clipped inside (-1, 1) for the tanh-Gaussian likelihood


class BCPolicy(EncodedPolicy):
    """Encoder + a head on its features. Subclasses define the head (`make_head`), the loss on
    encoded features (`loss`) and how features become an action (`act_features`)."""

    config_class = BCPolicyConfig
    policy_name: ClassVar[str]  # the --policy of `realrl bc train`

    def __init__(
        self,
        spec: PolicySpec,
        config: BCPolicyConfig,
        encoder: ObservationEncoder,
        seed: int = 0,
        device="cpu",
    ) -> None:
        super().__init__(spec)
        self.config, self.encoder, self.seed = config, encoder, seed
        self.head = self.make_head(encoder.output_dim)
        self.act_generator = torch.Generator(torch.device(device)).manual_seed(seed + 1)

    def make_head(self, input_dim: int) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def build(cls, spec: PolicySpec, config: BCPolicyConfig, device="cpu", seed: int = 0) -> BCPolicy:
        device = torch.device(device)
        return cls(spec, config, make_encoder(spec, config, device), seed, device).to(device)

    @torch.no_grad()
    def act_batch(
        self, state: torch.Tensor, images: dict[str, torch.Tensor], deterministic: bool = False
    ) -> torch.Tensor:
        return self.act_features(self.features(state, images), deterministic)

    def act_features(self, features: torch.Tensor, deterministic: bool) -> torch.Tensor:
        raise NotImplementedError

    def first_action(self, features: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The action (B, A) the policy takes for these features without acting state (a chunk's
        first, a fresh sample): what a held-out error measures and a residual's data is relabelled
        with."""
        raise NotImplementedError

    def loss(
        self, features: torch.Tensor, chunk: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """The BC loss of a batch: features (B, F), chunk (B, K, A) = the demo's actions t .. t+K-1
        (K >= 1; row 0 is this step's action), mask (B, K) = which of them lie inside the episode."""
        raise NotImplementedError


class GaussianBCPolicy(BCPolicy):
    """The baseline: a tanh-Gaussian fitted by maximum likelihood; acts with tanh(mean)."""

    kind = "bc-gaussian"
    policy_name = "gaussian"
    samples = True

    def make_head(self, input_dim: int) -> nn.Module:
        c = self.config
        return TanhGaussianActor(input_dim, self.spec.action_dim, c.hidden, c.log_std_min, c.log_std_max)

    def act_features(self, features: torch.Tensor, deterministic: bool) -> torch.Tensor:
        action, _ = self.head(features, deterministic=deterministic, generator=self.act_generator)
        return action

    def first_action(self, features, generator=None) -> torch.Tensor:
        return torch.tanh(self.head.distribution(features)[0])

    @torch.no_grad()
    def candidates(self, state, images, n, generator) -> torch.Tensor:
        return self.head.candidates(self.features(state, images), n, generator)

    def loss(self, features, chunk, mask, generator) -> torch.Tensor:
        action = chunk[:, 0].clamp(-ACTION_EDGE, ACTION_EDGE)
        mean, log_std = self.head.distribution(features)
        pre_tanh = torch.atanh(action)
        log_prob = (
            -0.5 * ((pre_tanh - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        ).sum(-1)
        log_prob = log_prob - torch.log1p(-action.pow(2)).sum(-1)  # the tanh's change of variables
        assert log_prob.shape == (len(features),)
        return -log_prob.mean()


class ChunkBCPolicy(BCPolicy):
    """Predicts the next `chunk_size` actions (tanh MLP, mean squared error). Acting keeps per-row
    state across calls within an episode (`reset` clears it): either the weighted mean of every
    chunk's prediction for this step (temporal ensembling), or one chunk executed open-loop."""

    kind = "bc-chunk"
    policy_name = "chunk"

    def make_head(self, input_dim: int) -> nn.Module:
        return mlp(input_dim, self.config.hidden, self.config.chunk_size * self.spec.action_dim)

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F) -> the chunk (B, K, A) in [-1, 1]."""
        return torch.tanh(self.head(features)).reshape(len(features), self.config.chunk_size, -1)

    def first_action(self, features, generator=None) -> torch.Tensor:
        return self.predict(features)[:, 0]

    def loss(self, features, chunk, mask, generator) -> torch.Tensor:
        k = self.config.chunk_size
        if chunk.shape[1] < k:
            raise ValueError(f"the chunk policy needs {k} actions per row, the data has {chunk.shape[1]}")
        error = (self.predict(features) - chunk[:, :k]).pow(2).mean(-1)  # (B, K)
        weights = mask[:, :k].float()
        return (error * weights).sum() / weights.sum().clamp_min(1.0)

    def __init__(self, spec, config, encoder, seed=0, device="cpu") -> None:
        super().__init__(spec, config, encoder, seed, device)
        self.reset()

    def reset(self) -> None:
        self._sums = self._weights = self._plan = self._rows = None
        self._step = 0

    def act_features(self, features: torch.Tensor, deterministic: bool) -> torch.Tensor:
        if self._rows != len(features):  # a new batch of episodes: nothing carries over
            self.reset()
            self._rows = len(features)
        if self.config.temporal_ensemble:
            action = self._ensembled(features)
        else:
            if self._step % self.config.chunk_size == 0:
                self._plan = self.predict(features)
            action = self._plan[:, self._step % self.config.chunk_size]
        self._step += 1
        return action

    def _ensembled(self, features: torch.Tensor) -> torch.Tensor:
        """Every step a new chunk; the prediction for step t + j made now weighs exp(decay * j) when
        step t + j comes (ACT's weights, oldest first, by age). Running sums over the next K steps
        hold it in O(K) memory."""
        chunk = self.predict(features)
        k = self.config.chunk_size
        ages = torch.arange(k, device=chunk.device, dtype=chunk.dtype)
        weights = torch.exp(self.config.ensemble_decay * ages)
        if self._sums is None:
            self._sums, self._weights = torch.zeros_like(chunk), torch.zeros(k, device=chunk.device)
        self._sums += weights.view(1, k, 1) * chunk
        self._weights += weights
        action = self._sums[:, 0] / self._weights[0]
        self._sums = torch.cat([self._sums[:, 1:], torch.zeros_like(self._sums[:, :1])], dim=1)
        self._weights = torch.cat([self._weights[1:], self._weights.new_zeros(1)])
        return action


class ShortcutBCPolicy(BCPolicy):
    """A shortcut flow model v(features, x, t, d): from noise x_0 ~ N(0, I) at t = 0 to an action at
    t = 1 in Euler steps of size d = 1 / steps. Trained by flow matching (d = 0: the instantaneous
    velocity x_1 - x_0) and self-consistency (one step of size d = two of size d / 2, the target
    without gradient), so 1 step is about as good as `max_steps` (Frans et al. 2024; SORL).
    Sampling is stochastic; `deterministic` draws the noise from a stream reseeded with a fixed seed
    at `reset`, so an evaluation episode is repeatable, in any process that loads the model."""

    kind = "bc-shortcut"
    policy_name = "shortcut"
    samples = True
    BOOTSTRAP_SHARE = 0.25  # of each batch trained on self-consistency (Frans et al.'s 1/4)
    DETERMINISTIC_NOISE_SEED = 0  # the model's, not the process's: a loaded copy acts the same

    def __init__(self, spec, config, encoder, seed=0, device="cpu") -> None:
        config.check()  # (also for configs read from files: a power-of-two sample_steps)
        self.levels = int(math.log2(config.max_steps)) + 2  # d = 0, then 1/max_steps ... 1
        super().__init__(spec, config, encoder, seed, device)
        self.eval_generator = torch.Generator(torch.device(device)).manual_seed(self.DETERMINISTIC_NOISE_SEED)

    def make_head(self, input_dim: int) -> nn.Module:
        return mlp(
            input_dim + self.spec.action_dim + 1 + self.levels, self.config.hidden, self.spec.action_dim
        )

    def level(self, d: torch.Tensor) -> torch.Tensor:
        """Step sizes (B,) -> level index: 0 for d = 0, else 1 + log2(max_steps * d)."""
        finest = 1.0 / self.config.max_steps
        index = 1 + torch.log2(d.clamp_min(finest) / finest).round().long()
        return torch.where(d > 0, index, torch.zeros_like(index))

    def velocity(self, features, x, t, d) -> torch.Tensor:
        """features (B, F), x (B, A), t and d (B,) -> the step direction (B, A)."""
        level = F.one_hot(self.level(d), self.levels).to(x.dtype)
        return self.head(torch.cat([features, x, t.unsqueeze(1), level], dim=1))

    def sample(
        self, features: torch.Tensor, steps: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Actions (B, A) in [-1, 1] in `steps` Euler steps from fresh noise."""
        n, a = len(features), self.spec.action_dim
        x = torch.randn(n, a, device=features.device, dtype=features.dtype, generator=generator)
        d = torch.full((n,), 1.0 / steps, device=features.device, dtype=features.dtype)
        for i in range(steps):
            x = x + d.unsqueeze(1) * self.velocity(features, x, d * i, d)
        return x.clamp(-1.0, 1.0)

    def reset(self) -> None:
        self.eval_generator.manual_seed(self.DETERMINISTIC_NOISE_SEED)

    def act_features(self, features: torch.Tensor, deterministic: bool) -> torch.Tensor:
        generator = self.eval_generator if deterministic else self.act_generator
        return self.sample(features, self.config.sample_steps, generator)

    def first_action(self, features, generator=None) -> torch.Tensor:
        return self.sample(features, self.config.sample_steps, generator)

    @torch.no_grad()
    def candidates(self, state, images, n, generator) -> torch.Tensor:
        """n samples per observation, from n noises through the same `sample_steps` Euler steps."""
        features = self.features(state, images)
        actions = self.sample(features.repeat_interleave(n, dim=0), self.config.sample_steps, generator)
        return actions.reshape(len(features), n, -1)

    def loss(self, features, chunk, mask, generator) -> torch.Tensor:
        target_action = chunk[:, 0]
        n, device = len(features), features.device
        noise = torch.randn(target_action.shape, device=device, generator=generator)
        n_boot = int(n * self.BOOTSTRAP_SHARE)
        # Self-consistency rows: d = 1 / 2^j for j in 0 .. log2(max_steps), t on that step's grid.
        exponents = torch.randint(0, self.levels - 1, (n_boot,), device=device, generator=generator)
        d_boot = 0.5 ** exponents.float()
        t_boot = torch.floor(torch.rand(n_boot, device=device, generator=generator) / d_boot) * d_boot
        # Flow-matching rows: d = 0, t uniform in [0, 1).
        t_flow = torch.rand(n - n_boot, device=device, generator=generator)
        t = torch.cat([t_boot, t_flow])
        d = torch.cat([d_boot, torch.zeros_like(t_flow)])
        x_t = (1 - t).unsqueeze(1) * noise + t.unsqueeze(1) * target_action
        target = target_action - noise
        if n_boot:
            target = torch.cat(
                [self._bootstrap(features[:n_boot], x_t[:n_boot], t_boot, d_boot), target[n_boot:]]
            )
        assert target.shape == x_t.shape
        return (self.velocity(features, x_t, t, d) - target).pow(2).mean()

    @torch.no_grad()
    def _bootstrap(self, features, x_t, t, d) -> torch.Tensor:
        """The direction of two steps of size d / 2 (d / 2 below the finest trained step: the flow's
        instantaneous velocity, d = 0)."""
        half = d / 2
        half_level = torch.where(half < 1.0 / self.config.max_steps, torch.zeros_like(half), half)
        first = self.velocity(features, x_t, t, half_level)
        second = self.velocity(features, x_t + half.unsqueeze(1) * first, t + half, half_level)
        return (first + second) / 2


BC_POLICIES: dict[str, type[BCPolicy]] = {
    cls.policy_name: cls for cls in (GaussianBCPolicy, ChunkBCPolicy, ShortcutBCPolicy)
}
