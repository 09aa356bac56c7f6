"""HIL-SERL's hybrid algorithm: SAC for the continuous end-effector dims plus a discrete gripper critic.

The last action dim is a tri-state gripper command: -1 open, 0 stay (hold the previous command),
+1 close (envs.DiscreteGripper executes it). A continuous policy makes a grasp a threshold it keeps
crossing; a Q-function over the three choices learns when to close, and a small penalty per open or
close command stops chattering. The gripper critic reads the shared encoder's features (detached:
the continuous critic trains the encoder, so still one encoder pass per batch) and learns with a
double-DQN target: the online gripper critic picks the next action, its target network scores it."""

from __future__ import annotations

import copy
from dataclasses import asdict, replace

import numpy as np
import torch

from formats.episodes import Episode
from learner.batch import Batch
from learner.configs import SACConfig
from learner.sac import SACAlgorithm, guarded_step, make_adam
from policies import PolicySpec
from policies.configs import HybridGripperPolicyConfig
from policies.sac import GRIPPER_COMMANDS, HybridGripperPolicy, make_gripper_critic

STAY = 1  # index of "stay" in GRIPPER_COMMANDS


def tristate_gripper_commands(commands: np.ndarray) -> np.ndarray:
    """An episode's continuous gripper commands (> 0 close) -> tri-state ones for the hybrid agent:
    +1 where the gripper closes, -1 where it opens, 0 where it keeps its state (the episode starts
    open). Lets demos recorded with a continuous gripper train the discrete gripper critic."""
    closed = np.asarray(commands, dtype=np.float32) > 0
    before = np.concatenate([[False], closed[:-1]])
    return np.where(closed == before, 0.0, np.where(closed, 1.0, -1.0)).astype(np.float32)


def gripper_index(command: torch.Tensor) -> torch.Tensor:
    """Stored tri-state commands (-1, 0, +1; noise rounds to the nearest) -> indices 0, 1, 2."""
    return (command.clamp(-1.0, 1.0).round() + 1).long()


def gripper_reward(reward: torch.Tensor, index: torch.Tensor, toggle_penalty: float) -> torch.Tensor:
    """The gripper critic's reward: the task reward minus `toggle_penalty` for every open or close
    command (HIL-SERL's grasp penalty; staying is free)."""
    return reward - toggle_penalty * (index != STAY).float()


def gripper_target(
    next_q_online: torch.Tensor,
    next_q_target: torch.Tensor,
    reward: torch.Tensor,
    discount: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Double DQN: y = r + discount * mask * Q_target(s', argmax_a Q_online(s', a)); q's are (B, 3)."""
    batch = reward.shape[0]
    assert next_q_online.shape == next_q_target.shape == (batch, len(GRIPPER_COMMANDS))
    assert discount.shape == mask.shape == (batch,)
    best = next_q_online.argmax(dim=1, keepdim=True)
    next_v = next_q_target.gather(1, best).squeeze(1)
    # where, not a product: after a terminal, next_obs may be garbage (NaN * 0 is still NaN).
    return reward + discount * torch.where(mask > 0, next_v, torch.zeros_like(next_v))


def gripper_loss(q: torch.Tensor, index: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between Q(s, a_taken) and the target; q is (B, 3), index and target (B,)."""
    assert q.ndim == 2 and index.shape == target.shape == (q.shape[0],), (q.shape, index.shape)
    return ((q.gather(1, index.unsqueeze(1)).squeeze(1) - target) ** 2).mean()


class HybridGripperAlgorithm(SACAlgorithm):
    """SAC over the first `action_dim - 1` dims plus the discrete gripper critic (which lives in the
    policy: acting needs it to pick the gripper command)."""

    name = "hybrid-gripper"
    policy_class = HybridGripperPolicy

    def __init__(
        self, config: SACConfig, spec: PolicySpec, device: str | torch.device = "cpu", seed: int = 0
    ) -> None:
        if spec.action_dim < 2:
            raise ValueError(
                f"the hybrid agent needs >= 1 continuous dim and the gripper, got {spec.action_dim}"
            )
        super().__init__(config, spec, device, seed)
        self.target_gripper_critic = copy.deepcopy(self.gripper_critic).requires_grad_(False)
        self.gripper_params = list(self.gripper_critic.parameters())
        self.gripper_optimizer = make_adam(self.gripper_params, config.critic_lr)

    @staticmethod
    def continuous_action_dim(spec: PolicySpec) -> int:
        return spec.action_dim - 1

    @staticmethod
    def policy_config(config: SACConfig) -> HybridGripperPolicyConfig:
        return HybridGripperPolicyConfig(
            **asdict(SACAlgorithm.policy_config(config)),
            gripper_hidden=config.hidden,
            gripper_layer_norm=config.critic_layer_norm,
            gripper_epsilon=config.gripper_epsilon,
        )

    def make_policy(self, spec, policy_config, encoder, actor, seed: int) -> HybridGripperPolicy:
        gripper_critic = make_gripper_critic(encoder.output_dim, policy_config)
        return HybridGripperPolicy(spec, policy_config, encoder, actor, gripper_critic, seed, self.device)

    def verifier(self) -> None:
        """None: the ensemble scores the continuous dims; the gripper critic picks the gripper."""
        return None

    @classmethod
    def relabel_demo(cls, episode: Episode) -> Episode:
        """Demo gripper commands as the tri-state choices the gripper critic learns from."""
        action = episode.action.copy()
        action[:, -1] = tristate_gripper_commands(action[:, -1])
        return replace(episode, action=action)

    @property
    def gripper_critic(self):
        return self.policy.gripper_critic

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().optimizers, "gripper": self.gripper_optimizer}

    def update_critic(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        features, next_features, next_target_features = self._encode_pair(batch)
        continuous = replace(batch, action=batch.action[:, :-1])
        metrics = self._critic_step(continuous, features, next_features, next_target_features)
        metrics.update(self._gripper_step(batch, features.detach(), next_features, next_target_features))
        self._soft_update_targets()
        return metrics, features.detach()

    def _gripper_step(
        self, batch: Batch, features: torch.Tensor, next_features: torch.Tensor, next_target_features
    ) -> dict[str, torch.Tensor]:
        index = gripper_index(batch.action[:, -1])
        with torch.no_grad():
            target = gripper_target(
                self.gripper_critic(next_features),
                self.target_gripper_critic(next_target_features),
                gripper_reward(batch.reward, index, self.config.gripper_toggle_penalty),
                batch.discount,
                batch.mask,
            )
        q = self.gripper_critic(features)
        loss = gripper_loss(q, index, target)
        grads = torch.autograd.grad(loss, self.gripper_params)
        self._track_finite(guarded_step(self.gripper_optimizer, self.gripper_params, grads, loss))
        return {"gripper_loss": loss.detach(), "gripper_q_mean": q.detach().mean()}

    @torch.no_grad()
    def _soft_update_targets(self) -> None:
        super()._soft_update_targets()
        torch._foreach_lerp_(
            list(self.target_gripper_critic.parameters()),
            list(self.gripper_critic.parameters()),
            self.config.tau,
        )
