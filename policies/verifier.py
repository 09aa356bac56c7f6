"""Critic-ranked sampling (SORL's best-of-N): a sampling policy draws N candidate actions per
observation and the one a trained critic scores highest is executed. `CriticVerifier` is a run's
critic ensemble and its encoder, frozen (a checkpoint's critic.pt); `BestOfN` wraps any policy
with `candidates` (sac, residual, bc-gaussian, bc-shortcut) as a policy of its own, so validate's
rollouts (the actor's composition) and `bench actor` run it like any other."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from formats.config import from_dict, to_dict
from policies.base import Policy, PolicySpec, copy_weights, not_sampling
from policies.configs import CriticConfig
from policies.critics import CriticEnsemble, vectorized_state_dict
from policies.encoders import ObservationEncoder
from policies.sac import make_encoder, observation_features, without_file_trunk


class CriticVerifier(nn.Module):
    """Q(obs, action) of a trained run: its encoder (with the state normalisation) and critic
    ensemble (built from a file: always the vectorised implementation). A candidate's score is the
    ensemble's mean Q: the members' disagreement is what RLPD's pessimistic target guards against
    while learning; ranking needs the best estimate."""

    kind = "critic"

    def __init__(
        self, spec: PolicySpec, config: CriticConfig, encoder: ObservationEncoder, critic: nn.Module
    ) -> None:
        super().__init__()
        self.spec, self.config, self.encoder, self.critic = spec, config, encoder, critic

    @classmethod
    def from_description(cls, description: dict[str, Any], device="cpu") -> CriticVerifier:
        """A critic with fresh weights, as `describe()` names it (load the real ones after)."""
        if description.get("kind") != cls.kind:
            raise ValueError(f"not a critic: kind {description.get('kind')!r}")
        spec = PolicySpec.from_json(description["spec"])
        # Its weights replace every parameter: never download pretrained ones for that.
        config = replace(from_dict(CriticConfig, description["config"]), pretrained_encoder=False)
        device = torch.device(device)
        encoder = make_encoder(spec, config, device)
        critic = CriticEnsemble(
            encoder.output_dim,
            spec.action_dim,
            config.hidden,
            config.critics,
            config.critic_layer_norm,
        )
        return cls(spec, config, encoder, critic).to(device)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "spec": self.spec.to_json(), "config": to_dict(self.config)}

    def pushed_state_dict(self) -> dict[str, torch.Tensor]:
        """What its file holds: the encoder but a frozen trunk from its own model file (named by
        hash), and the ensemble in the vectorised layout (on a CPU a run trains the loop one, which
        is 5-8x slower to score 1-16 candidates with: 2.0 vs 0.4 ms for 4, one thread)."""
        encoder = {f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}
        critic = {f"critic.{k}": v for k, v in vectorized_state_dict(self.critic).items()}
        return {**without_file_trunk(encoder, self.config), **critic}

    def load_weights(self, weights: dict[str, Any]) -> None:
        copy_weights(self.pushed_state_dict(), weights, "critic")

    @torch.no_grad()
    def scores(
        self, state: torch.Tensor, images: dict[str, torch.Tensor], actions: torch.Tensor
    ) -> torch.Tensor:
        """Mean Q over the ensemble (B, N) of N candidate actions (B, N, A) per observation; the
        observations are encoded once, not once per candidate."""
        b, n, a = actions.shape
        features = observation_features(self.encoder, self.spec.cameras, state, images)
        q = self.critic(features.repeat_interleave(n, dim=0), actions.reshape(b * n, a))  # (E, B * N)
        return q.mean(0).reshape(b, n)


class BestOfN(Policy):
    """Executes, per observation, the best of `n` candidates of `policy` by the critic's score. The
    candidates' noise comes from a stream reseeded at every `reset` with a fixed seed (as a shortcut
    policy's deterministic noise), so an evaluation episode is repeatable. A Gaussian's first
    candidate is its mean, so best-of-1 is the deterministic policy and more candidates only add
    choices. A test-time wrapper (validate, bench actor): it runs as one stage, so over a residual
    the composition records no separate base action, and the actor process never loads a critic."""

    kind = "best-of-n"
    NOISE_SEED = 0

    def __init__(self, policy: Policy, critic: CriticVerifier, n: int) -> None:
        if n < 1:
            raise ValueError(f"best-of-N needs N >= 1 candidates, got {n}")
        if not policy.samples:
            raise ValueError(not_sampling(policy.kind))
        policy.spec.check(critic.spec, "the critic")
        super().__init__(policy.spec)
        self.policy, self.critic, self.n = policy, critic, n
        self.generator = torch.Generator(policy.device).manual_seed(self.NOISE_SEED)
        self.to(policy.device)

    def config_json(self) -> dict[str, Any]:
        return self.policy.config_json()

    def reset(self) -> None:
        self.policy.reset()
        self.generator.manual_seed(self.NOISE_SEED)

    @torch.no_grad()
    def act_batch(
        self, state: torch.Tensor, images: dict[str, torch.Tensor], deterministic: bool = False
    ) -> torch.Tensor:
        candidates = self.policy.candidates(state, images, self.n, self.generator)
        best = self.critic.scores(state, images, candidates).argmax(dim=1)
        return candidates[torch.arange(len(best), device=best.device), best]
