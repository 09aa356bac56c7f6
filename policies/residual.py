"""A residual correction over a frozen base policy (ResFiT): executed = clip(base + residual), the
residual a tanh-Gaussian on [observation features, base action] times `scale`, its last layer
zero so a fresh residual acts exactly as the base. The base is a policy model file named with its
content hash, loaded by every process that builds the residual (as a frozen encoder trunk is): it
ships once, by hash, and weight pushes carry only the residual."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from policies.base import Policy, PolicySpec
from policies.configs import ResidualPolicyConfig
from policies.encoders import ObservationEncoder
from policies.networks import TanhGaussianActor
from policies.sac import EncodedPolicy, make_encoder

BASE_KEYS = "base."


def zero_last_layer(actor: TanhGaussianActor, noise: float = 1.0) -> TanhGaussianActor:
    """The mean output starts at 0 (tanh(0) = 0: no correction until training moves it), the
    log-std output at log(`noise`): the residual's initial exploration std, before tanh and scale."""
    last = actor.net[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    with torch.no_grad():
        last.bias[last.out_features // 2 :] = math.log(noise)
    return actor


def executed_action(base_action: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """clip(base + residual) into the action bounds, element by element (same shapes)."""
    assert base_action.shape == residual.shape, (base_action.shape, residual.shape)
    return (base_action + residual).clamp(-1.0, 1.0)


def load_base(config: ResidualPolicyConfig, device="cpu") -> Policy:
    """The base of a residual: its model file, refused unless it is the base the residual was
    trained over (same content hash)."""
    from policies.policy_files import load_policy  # (policy_files imports the registry, which imports this)

    if not config.base:
        raise ValueError("a residual policy needs its base policy's MODEL file (--base-policy)")
    model = load_policy(config.base, device=device)
    if config.base_hash is not None and model.hash != config.base_hash:
        raise ValueError(
            f"base policy {config.base} hashes to {model.hash}, but this residual was trained over base "
            f"{config.base_hash}: a residual corrects only the base it was trained over"
        )
    if isinstance(model.policy, ResidualPolicy):
        raise ValueError(f"base policy {config.base}: a residual cannot be the base of another residual")
    return model.policy.requires_grad_(False)


class ResidualPolicy(EncodedPolicy):
    """The base (frozen, not pushed) and the residual that corrects it. `act_batch` runs both; the
    actor's composition runs them as its base and residual stages (`correct`), so each step record
    keeps the base's proposal apart from what was executed."""

    kind = "residual"
    config_class = ResidualPolicyConfig
    samples = True

    def __init__(
        self,
        spec: PolicySpec,
        config: ResidualPolicyConfig,
        base: Policy,
        encoder: ObservationEncoder,
        actor: TanhGaussianActor,
        seed: int = 0,
        device="cpu",
    ) -> None:
        base.spec.check(spec, f"base policy {config.base}")
        super().__init__(spec)
        self.config, self.base, self.encoder, self.actor = config, base, encoder, actor
        self.act_generator = torch.Generator(torch.device(device)).manual_seed(seed + 1)

    @classmethod
    def build(cls, spec: PolicySpec, config: ResidualPolicyConfig, device="cpu", seed: int = 0):
        device = torch.device(device)
        base = load_base(config, device)
        encoder = make_encoder(spec, config, device)
        actor = TanhGaussianActor(
            encoder.output_dim + spec.action_dim,
            spec.action_dim,
            config.hidden,
            config.log_std_min,
            config.log_std_max,
        )
        noise = config.init_noise / config.scale
        return cls(spec, config, base, encoder, zero_last_layer(actor, noise), seed, device).to(device)

    def pushed_state_dict(self) -> dict[str, torch.Tensor]:
        """The residual only: the base is loaded from its own file, checked by its hash."""
        return {k: v for k, v in super().pushed_state_dict().items() if not k.startswith(BASE_KEYS)}

    def reset(self) -> None:
        self.base.reset()

    def stages(self) -> tuple[Policy, ResidualPolicy]:
        return self.base, self

    def correction(
        self, features: torch.Tensor, base_action: torch.Tensor, deterministic: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(residual (B, A) in [-scale, scale], its log-probability (B,)), given the base's action."""
        raw, log_prob = self.actor(
            torch.cat([features, base_action], dim=1),
            deterministic=deterministic,
            generator=self.act_generator,
        )
        # log_prob is of the unscaled tanh output: a constant shift, harmless to SAC's temperature.
        return raw * self.config.scale, log_prob

    @torch.no_grad()
    def correct_batch(
        self,
        state: torch.Tensor,
        images: dict[str, torch.Tensor],
        base_action: torch.Tensor,
        deterministic: bool,
    ) -> torch.Tensor:
        """clip(base action + residual), (B, A)."""
        residual, _ = self.correction(self.features(state, images), base_action, deterministic)
        return executed_action(base_action, residual)

    @torch.no_grad()
    def act_batch(
        self, state: torch.Tensor, images: dict[str, torch.Tensor], deterministic: bool = False
    ) -> torch.Tensor:
        base_action = self.base.act_batch(state, images, deterministic)
        return self.correct_batch(state, images, base_action, deterministic)

    @torch.no_grad()
    def candidates(self, state, images, n, generator) -> torch.Tensor:
        """The base's (deterministic) action plus n corrections: the residual's mean, then samples."""
        base_action = self.base.act_batch(state, images, deterministic=True)
        inputs = torch.cat([self.features(state, images), base_action], dim=1)
        residual = self.actor.candidates(inputs, n, generator) * self.config.scale
        return executed_action(base_action.unsqueeze(1).expand_as(residual), residual)

    @torch.no_grad()
    def correct(self, obs: dict[str, Any], base_action, deterministic: bool = False):
        """The composition's residual stage: one observation and the base's action (numpy) -> the
        executed action (numpy float32)."""
        state, images = self.batch_of(obs)
        base = torch.as_tensor(base_action, device=self.device, dtype=torch.float32).unsqueeze(0)
        return self.correct_batch(state, images, base, deterministic)[0].cpu().numpy()


def with_base_model(description: dict[str, Any], path: str | Path | None) -> dict[str, Any]:
    """A residual's description with its base read from `path` (this machine's copy), still checked
    by the hash; other descriptions as they are."""
    if path is None or description.get("kind") != ResidualPolicy.kind:
        return description
    return {**description, "config": {**description["config"], "base": str(Path(path).resolve())}}
