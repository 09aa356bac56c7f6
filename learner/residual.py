"""Residual RL over a frozen base policy (ResFiT), as a variant of RLPD SAC: the policy trained is a
`policies.ResidualPolicy`; the critics see the executed action clip(base + residual), in the
target (at next_obs, with the base's action there) and in the actor's loss (gradients through the
residual only). Why SAC and not ResFiT's TD3: it is the learner this stack already trusts (the
same ensemble, targets, UTD and n-step code), its learned temperature sets the exploration noise
that TD3 fixes by hand (0.025-0.05), and a zero last layer still starts it exactly at the base.

The batch carries the base's action at obs and next_obs (the replay stores it per observation:
actors send what their base proposed; demos are relabelled by running the base along them)."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import torch
from torch import nn

from formats.episodes import Episode
from learner.configs import SACConfig
from learner.sac import SACAlgorithm
from policies import PolicySpec
from policies.configs import ResidualPolicyConfig
from policies.networks import TanhGaussianActor
from policies.residual import ResidualPolicy, executed_action, load_base, zero_last_layer


class ResidualSACAlgorithm(SACAlgorithm):
    name = "residual"
    policy_class = ResidualPolicy

    def __init__(
        self,
        config: SACConfig,
        spec: PolicySpec,
        device: str | torch.device = "cpu",
        seed: int = 0,
        residual: ResidualPolicyConfig | None = None,
    ) -> None:
        if residual is None or not residual.base:
            raise ValueError("residual RL needs a base policy (--base-policy MODEL)")
        if config.bc_weight:
            raise ValueError("--agent.bc-weight pulls the policy toward demo actions: not for a residual")
        self.residual_config = residual  # read by policy_config() inside SACAlgorithm.__init__
        super().__init__(config, spec, device, seed)

    def policy_config(self, config: SACConfig) -> ResidualPolicyConfig:
        """The residual's settings with the acting half of the `--agent.*` flags."""
        acting = SACAlgorithm.policy_config(config)
        return replace(self.residual_config, **{f.name: getattr(acting, f.name) for f in fields(acting)})

    def make_actor(self, features: int, action_dim: int, policy_config) -> nn.Module:
        actor = TanhGaussianActor(
            features + action_dim,
            action_dim,
            policy_config.hidden,
            policy_config.log_std_min,
            policy_config.log_std_max,
        )
        return zero_last_layer(actor, self.residual_config.init_noise / self.residual_config.scale)

    def make_policy(self, spec, policy_config, encoder, actor, seed: int) -> ResidualPolicy:
        base = load_base(policy_config, self.device)
        return ResidualPolicy(spec, policy_config, base, encoder, actor, seed, self.device)

    def sample_action(self, features: torch.Tensor, base_action: torch.Tensor | None):
        """The executed action clip(base + residual) and the residual's log-probability."""
        if base_action is None:
            raise ValueError(
                "a residual update needs the batch's base actions (a replay with base_action_dim)"
            )
        residual, log_prob = self.policy.correction(features, base_action, deterministic=False)
        return executed_action(base_action, residual), log_prob

    def relabel_demo(self, episode: Episode) -> Episode:
        """The demo with the base's action at each of its observations, the base run along the episode
        as an actor would run it (a chunked base keeps its state); the demo's own actions stay the
        executed ones the critics learn from."""
        base = self.policy.base
        base.reset()
        actions = []
        for t in range(len(episode.states)):
            obs = {"state": episode.states[t], "images": {c: f[t] for c, f in episode.images.items()}}
            actions.append(base.act(obs, deterministic=True))
        base.reset()
        return replace(episode, base_action=np.stack(actions).astype(np.float32))
