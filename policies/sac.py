"""RLPD's acting half: an observation encoder and a tanh-Gaussian actor (`GaussianPolicy`), and
HIL-SERL's hybrid policy, which adds the discrete gripper critic that picks the gripper command
(`HybridGripperPolicy`). The SAC algorithms in learner/ train these; an actor only runs them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from formats.config import from_dict, to_dict
from policies.base import Policy, PolicySpec
from policies.configs import GaussianPolicyConfig, HybridGripperPolicyConfig
from policies.encoders import PRETRAINED_PREFIX, ObservationEncoder, native_bf16, to_float_nchw, trunk_hash
from policies.networks import TanhGaussianActor, mlp

FILE_TRUNK_KEYS = "encoder.image_encoder.trunk."
# Discrete gripper choices in index order and the command each sends.
GRIPPER_COMMANDS = (-1.0, 0.0, 1.0)  # open, stay, close


def make_encoder(spec: PolicySpec, config: GaussianPolicyConfig, device: torch.device) -> ObservationEncoder:
    """The policy's observation encoder; a pretrained:MODEL trunk must hash to `encoder_hash` when
    the config names one (a learner's run, or the actor it describes itself to)."""
    encoder = ObservationEncoder(
        spec.state_dim,
        spec.cameras,
        spec.image_size,
        config.encoder,
        config.pretrained_encoder,
        bf16=config.image_bf16 and native_bf16(device),
    )
    if spec.cameras and config.encoder_hash is not None:
        found = trunk_hash(encoder.image_encoder.trunk)
        if found != config.encoder_hash:
            raise ValueError(
                f"encoder {config.encoder}: its weights hash to {found}, but this run's encoder is "
                f"{config.encoder_hash} (the model file changed, or this machine holds another one)"
            )
    return encoder


def trunk_from_file(config: GaussianPolicyConfig) -> bool:
    """Whether the encoder's frozen trunk is loaded from a model file (so it is not pushed)."""
    return config.encoder.startswith(PRETRAINED_PREFIX)


def without_file_trunk(
    state: dict[str, torch.Tensor], config: GaussianPolicyConfig
) -> dict[str, torch.Tensor]:
    """`state` less a frozen trunk loaded from its own model file (named by path and hash instead)."""
    if not trunk_from_file(config):
        return state
    return {k: v for k, v in state.items() if not k.startswith(FILE_TRUNK_KEYS)}


def make_actor(input_dim: int, action_dim: int, config: GaussianPolicyConfig) -> TanhGaussianActor:
    return TanhGaussianActor(input_dim, action_dim, config.hidden, config.log_std_min, config.log_std_max)


def stack_images(images: dict[str, torch.Tensor], cameras: tuple[str, ...]) -> torch.Tensor:
    """uint8 {camera: (N, H, W, 3)} -> float (K * N, 3, H, W), cameras in `cameras` order."""
    return to_float_nchw(torch.cat([images[c] for c in cameras]))


def observation_features(
    encoder: ObservationEncoder,
    cameras: tuple[str, ...],
    state: torch.Tensor,
    images: dict[str, torch.Tensor],
) -> torch.Tensor:
    """Encoder features of raw observations (acting): state (B, S), uint8 {camera: (B, H, W, 3)}."""
    pixels = None
    if cameras:
        stacked = stack_images(images, cameras)
        pixels = stacked.reshape(len(cameras), -1, *stacked.shape[1:])
    return encoder(state, pixels)


class EncodedPolicy(Policy):
    """A policy on an ObservationEncoder with a typed config (`config_class`): how it is described,
    rebuilt and what of it a learner pushes. Subclasses set `self.config` and `self.encoder`."""

    config_class: type
    config: Any
    encoder: ObservationEncoder

    @classmethod
    def from_description(cls, spec: PolicySpec, config: dict[str, Any], device="cpu", seed: int = 0):
        # Pushed weights replace every parameter: never download pretrained ones for that.
        typed = replace(from_dict(cls.config_class, config), pretrained_encoder=False)
        return cls.build(spec, typed, device, seed)

    def config_json(self) -> dict[str, Any]:
        return to_dict(self.config)

    def pushed_state_dict(self) -> dict[str, torch.Tensor]:
        """A frozen trunk from a model file stays out: the actor loads the same file, checked by its
        hash (make_encoder), instead of receiving those weights with every push."""
        return without_file_trunk(self.state_dict(), self.config)

    def features(self, state: torch.Tensor, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """Encoder features of un-augmented observations (acting)."""
        return observation_features(self.encoder, self.spec.cameras, state, images)


class GaussianPolicy(EncodedPolicy):
    """pi(a | encoder(obs)): a Gaussian squashed by tanh into [-1, 1]. `act_generator` draws the
    exploration noise (its own stream, so acting never shifts the update's random numbers)."""

    kind = "sac"
    config_class = GaussianPolicyConfig
    samples = True

    def __init__(
        self,
        spec: PolicySpec,
        config: GaussianPolicyConfig,
        encoder: ObservationEncoder,
        actor: TanhGaussianActor,
        seed: int = 0,
        device="cpu",
    ) -> None:
        super().__init__(spec)
        self.config = config
        self.encoder, self.actor = encoder, actor
        # On the device it acts on (build the policy there; moving it later leaves the stream behind).
        self.act_generator = torch.Generator(torch.device(device)).manual_seed(seed + 1)

    @classmethod
    def build(cls, spec: PolicySpec, config: GaussianPolicyConfig, device="cpu", seed: int = 0):
        """A fresh policy with its own networks (an actor process loads the learner's weights into it)."""
        device = torch.device(device)
        encoder = make_encoder(spec, config, device)
        actor = make_actor(encoder.output_dim, spec.action_dim, config)
        return cls(spec, config, encoder, actor, seed, device).to(device)

    @torch.no_grad()
    def act_batch(
        self, state: torch.Tensor, images: dict[str, torch.Tensor], deterministic: bool = False
    ) -> torch.Tensor:
        return self.sample(self.features(state, images), deterministic)

    def sample(self, features: torch.Tensor, deterministic: bool) -> torch.Tensor:
        action, _ = self.actor(features, deterministic=deterministic, generator=self.act_generator)
        return action

    @torch.no_grad()
    def candidates(self, state, images, n, generator) -> torch.Tensor:
        return self.actor.candidates(self.features(state, images), n, generator)


class HybridGripperPolicy(GaussianPolicy):
    """The actor over the continuous dims plus a Q-function over the three gripper choices: the
    gripper command is its argmax, or (when exploring) a uniform choice with probability
    `gripper_epsilon`. The last action dim is tri-state (envs.DiscreteGripper executes it)."""

    kind = "hybrid-gripper"
    config_class = HybridGripperPolicyConfig
    discrete_gripper = True
    samples = False  # its critic ranks the continuous dims only; the gripper is the gripper critic's

    def __init__(
        self,
        spec: PolicySpec,
        config: HybridGripperPolicyConfig,
        encoder: ObservationEncoder,
        actor: TanhGaussianActor,
        gripper_critic: torch.nn.Module,
        seed: int = 0,
        device="cpu",
    ) -> None:
        if spec.action_dim < 2:
            raise ValueError(
                f"the hybrid policy needs >= 1 continuous dim and the gripper, got {spec.action_dim}"
            )
        super().__init__(spec, config, encoder, actor, seed, device)
        self.gripper_critic = gripper_critic

    @classmethod
    def build(cls, spec: PolicySpec, config: HybridGripperPolicyConfig, device="cpu", seed: int = 0):
        device = torch.device(device)
        encoder = make_encoder(spec, config, device)
        actor = make_actor(encoder.output_dim, spec.action_dim - 1, config)
        gripper_critic = make_gripper_critic(encoder.output_dim, config)
        return cls(spec, config, encoder, actor, gripper_critic, seed, device).to(device)

    @torch.no_grad()
    def act_batch(
        self, state: torch.Tensor, images: dict[str, torch.Tensor], deterministic: bool = False
    ) -> torch.Tensor:
        features = self.features(state, images)
        action = self.sample(features, deterministic)
        choice = self.gripper_critic(features).argmax(dim=1)
        if not deterministic:
            draws = torch.rand(2, len(choice), generator=self.act_generator, device=self.device)
            random_choice = (draws[1] * len(GRIPPER_COMMANDS)).long().clamp(max=len(GRIPPER_COMMANDS) - 1)
            choice = torch.where(draws[0] < self.config.gripper_epsilon, random_choice, choice)
        command = choice.float() - 1.0  # index 0, 1, 2 -> -1, 0, +1 (GRIPPER_COMMANDS)
        return torch.cat([action, command.unsqueeze(1)], dim=1)

    def candidates(self, state, images, n, generator) -> torch.Tensor:
        return Policy.candidates(self, state, images, n, generator)  # none (see `samples`)


def make_gripper_critic(input_dim: int, config: HybridGripperPolicyConfig) -> torch.nn.Module:
    return mlp(input_dim, config.gripper_hidden, len(GRIPPER_COMMANDS), layer_norm=config.gripper_layer_norm)
