"""LeRobot 0.4.4's SAC learner update, timed at the shapes and flags of benchmarks/learner.py: LeRobot's
own SACPolicy, optimizers and ReplayBuffer, stepped the way lerobot/rl/learner.py steps them.

Needs only torch and the LeRobot wheel with the few packages its SAC modules import, installed beside
the project's environment by `make bench-lerobot`, which also runs it:

    PYTHONPATH=.:.venv/lerobot-0.4.4 .venv/bin/python -m benchmarks.lerobot_sac --obs pixels --json

Line numbers below refer to the lerobot-0.4.4 wheel. Of the project it imports only the benchmark
clock and flags (benchmarks/timing.py, benchmarks/configs.py), so both sides share torch, the clock
and the command line, nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.machinery
import json
import sys
import tempfile
import time
import types
from collections.abc import Iterator

import torch

from benchmarks.configs import BenchLeRobotConfig, shape_kwargs
from benchmarks.timing import peak_memory_mb, synchronize, timed_rate
from formats.config import add_dataclass_arguments, dataclass_from_args

LEROBOT_VERSION = "0.4.4"
INSTALL_HINT = "run `make bench-lerobot` to install it into .venv/lerobot-0.4.4"

# LeRobot's package modules import these at module level for dataset and video I/O (lerobot.datasets,
# lerobot.utils.utils, lerobot.processor, the diffusion/groot policy configs). The SAC update never
# calls them, and together they weigh hundreds of MB, so they are stood in for during the import only.
IO_ONLY_PACKAGES = frozenset({"datasets", "pandas", "pyarrow", "av", "diffusers"})

# microsoft/resnet-18 as a transformers ResNetConfig: what LeRobot's PretrainedImageEncoder loads
# through AutoModel.from_pretrained (modeling_sac.py:932-950). Random weights: nothing is downloaded.
RESNET18 = {
    "num_channels": 3,
    "embedding_size": 64,
    "hidden_sizes": [64, 128, 256, 512],
    "depths": [2, 2, 2, 2],
    "layer_type": "basic",
    "hidden_act": "relu",
    "downsample_in_first_stage": False,
}
REPLAY_BUDGET_BYTES = 2**30  # LeRobot stores images as float32; cap the synthetic buffer at 1 GiB
CRITIC, ACTOR, TEMPERATURE = "critic", "actor", "temperature"


class LeRobotUnavailable(RuntimeError):
    """LeRobot 0.4.4 (or a package its SAC path needs) cannot be imported."""


class _AbsentType(type):
    """A class standing in for any name of an I/O-only package: it can be subclassed, read, and called
    (module-level decorators) while LeRobot is being imported; called after that, it raises."""

    importing = False

    def __getattr__(cls, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return _AbsentType(f"{cls.__name__}.{name}", (), {})

    def __call__(cls, *args, **kwargs):
        if not _AbsentType.importing:
            raise RuntimeError(f"{cls.__name__} is I/O-only and not installed for this benchmark")
        return _AbsentType(f"{cls.__name__}()", (), {})


class _AbsentModule(types.ModuleType):
    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return _AbsentType(f"{self.__name__}.{name}", (), {})


class _AbsentFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on sys.meta_path: serves an _AbsentModule for an IO_ONLY_PACKAGES name no real finder has."""

    def __init__(self) -> None:
        self.served: set[str] = set()

    def find_spec(self, fullname, path, target=None):
        top = fullname.partition(".")[0]
        if top not in IO_ONLY_PACKAGES:
            return None
        self.served.add(top)
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        return _AbsentModule(spec.name)

    def exec_module(self, module) -> None:
        module.__path__ = []


@contextlib.contextmanager
def _io_packages_absent() -> Iterator[_AbsentFinder]:
    """Stand-ins exist only while LeRobot is imported; afterwards other code (transformers, dynamo)
    sees those packages as not installed, and a lazy import of one inside LeRobot fails loudly."""
    finder = _AbsentFinder()
    sys.meta_path.append(finder)
    _AbsentType.importing = True
    try:
        yield finder
    finally:
        _AbsentType.importing = False
        sys.meta_path.remove(finder)
        for name in [name for name, module in sys.modules.items() if isinstance(module, _AbsentModule)]:
            del sys.modules[name]


def import_lerobot() -> tuple[types.SimpleNamespace, list[str]]:
    """LeRobot's SAC classes and constants, and which I/O-only packages were stood in for."""
    try:
        with _io_packages_absent() as finder:
            import lerobot
            from lerobot.configs.types import FeatureType, PolicyFeature
            from lerobot.policies.sac.configuration_sac import SACConfig
            from lerobot.policies.sac.modeling_sac import SACPolicy
            from lerobot.rl.buffer import ReplayBuffer
            from lerobot.utils.constants import ACTION, OBS_IMAGES, OBS_STATE
    except ImportError as error:
        raise LeRobotUnavailable(f"cannot import LeRobot's SAC modules ({error}); {INSTALL_HINT}") from error
    if lerobot.__version__ != LEROBOT_VERSION:
        raise LeRobotUnavailable(
            f"found lerobot {lerobot.__version__}, need {LEROBOT_VERSION}; {INSTALL_HINT}"
        )
    modules = types.SimpleNamespace(
        FeatureType=FeatureType,
        PolicyFeature=PolicyFeature,
        SACConfig=SACConfig,
        SACPolicy=SACPolicy,
        ReplayBuffer=ReplayBuffer,
        ACTION=ACTION,
        OBS_IMAGES=OBS_IMAGES,
        OBS_STATE=OBS_STATE,
    )
    return modules, sorted(finder.served)


def random_resnet18_dir(directory: str) -> str:
    """A local transformers ResNet-18 checkpoint with random weights, for `vision_encoder_name`."""
    try:
        from transformers import ResNetConfig, ResNetModel
    except ImportError as error:
        raise LeRobotUnavailable(
            f"--encoder resnet18 needs transformers, LeRobot's pretrained-encoder backend ({error}); "
            f"{INSTALL_HINT}"
        ) from error
    ResNetModel(ResNetConfig(**RESNET18)).save_pretrained(directory)
    return directory


def sac_config(
    lerobot: types.SimpleNamespace,
    critics: int,
    state_dim: int,
    action_dim: int,
    cameras: int,
    image_size: int,
    device: torch.device,
    torch_compile: bool,
    resnet_dir: str | None,
):
    """LeRobot's SACConfig at the benchmark's shapes; everything not named keeps LeRobot's default
    (hidden dims 256x256, latent 256, shared encoder, grad clip 40, utd_ratio 1, policy_update_freq 1)."""
    features = {lerobot.OBS_STATE: lerobot.PolicyFeature(lerobot.FeatureType.STATE, (state_dim,))}
    for camera in range(cameras):
        features[f"{lerobot.OBS_IMAGES}.cam{camera}"] = lerobot.PolicyFeature(
            lerobot.FeatureType.VISUAL, (3, image_size, image_size)
        )
    return lerobot.SACConfig(
        input_features=features,
        output_features={lerobot.ACTION: lerobot.PolicyFeature(lerobot.FeatureType.ACTION, (action_dim,))},
        device=str(device),
        # The replay sits on the compute device, LeRobot's fastest setting (its default is "cpu").
        storage_device=str(device),
        num_critics=critics,
        use_torch_compile=torch_compile,
        # Without resnet_dir: DefaultImageEncoder trained from scratch (LeRobot's default
        # freeze_vision_encoder=True would freeze it at its random init). With it: the pretrained path,
        # frozen as by default.
        vision_encoder_name=resnet_dir,
        freeze_vision_encoder=resnet_dir is not None,
    )


def make_optimizers(policy, config) -> dict[str, torch.optim.Optimizer]:
    """learner.py:761-810 make_optimizers_and_scheduler (no discrete critic, no scheduler). It lives in a
    module that imports grpc, wandb and the datasets stack, hence restated here."""
    actor_params = [
        param
        for name, param in policy.actor.named_parameters()
        if not config.shared_encoder or not name.startswith("encoder")
    ]
    return {
        ACTOR: torch.optim.Adam(actor_params, lr=config.actor_lr),
        CRITIC: torch.optim.Adam(policy.critic_ensemble.parameters(), lr=config.critic_lr),
        # LeRobot steps the temperature with critic_lr (learner.py:801); the two are equal by default.
        TEMPERATURE: torch.optim.Adam([policy.log_alpha], lr=config.critic_lr),
    }


def build_learner(
    lerobot: types.SimpleNamespace,
    encoder: str,
    critics: int,
    state_dim: int,
    action_dim: int,
    cameras: int,
    image_size: int,
    device: torch.device,
    torch_compile: bool,
) -> tuple:
    """(SACConfig, SACPolicy in train mode on `device`, optimizers), as make_policy (factory.py:518-520)
    and learner.py:316-322 set them up."""
    with tempfile.TemporaryDirectory() as scratch:  # the ResNet checkpoint is read once, at construction
        config = sac_config(
            lerobot,
            critics=critics,
            state_dim=state_dim,
            action_dim=action_dim,
            cameras=cameras,
            image_size=image_size,
            device=device,
            torch_compile=torch_compile,
            resnet_dir=random_resnet18_dir(scratch) if encoder == "resnet18" else None,
        )
        policy = lerobot.SACPolicy(config=config)
    policy.to(device)
    policy.train()
    return config, policy, make_optimizers(policy, config)


def replay_capacity(config, batch: int, transitions: int) -> int:
    """`transitions`, or fewer where LeRobot's float32 storage would pass REPLAY_BUDGET_BYTES."""
    floats = sum(torch.Size(feature.shape).numel() for feature in config.input_features.values())
    return max(batch + 1, min(transitions, REPLAY_BUDGET_BYTES // (4 * floats)))


def filled_replay(lerobot: types.SimpleNamespace, config, capacity: int, seed: int):
    """LeRobot's ReplayBuffer as learner.py:947-953 builds it (optimize_memory, default DrQ augmentation),
    holding `capacity` synthetic transitions: one add() lets LeRobot allocate its storage, the rest is
    written in bulk, since a Python loop of add() calls would outlast the measurement."""
    torch.manual_seed(seed)
    device = torch.device(config.storage_device)
    buffer = lerobot.ReplayBuffer(
        capacity=capacity,
        device=config.device,
        state_keys=config.input_features.keys(),
        storage_device=config.storage_device,
        optimize_memory=True,
    )
    state = {key: torch.zeros(1, *feature.shape) for key, feature in config.input_features.items()}
    action = torch.zeros(1, config.output_features[lerobot.ACTION].shape[0])
    buffer.add(state, action, reward=0.0, next_state=state, done=False, truncated=False)
    for key, storage in buffer.states.items():
        if key.startswith(lerobot.OBS_IMAGES):
            storage.uniform_()  # LeRobot's images are floats in [0, 1]
        else:
            storage.normal_()
    buffer.actions.uniform_(-1, 1)
    buffer.rewards.copy_((torch.rand(capacity, device=device) < 0.1).float())
    buffer.dones.copy_(torch.rand(capacity, device=device) < 0.01)
    buffer.truncateds.zero_()
    buffer.size, buffer.position = capacity, 0
    return buffer


def check_nan_in_transition(observations: dict, actions: torch.Tensor, next_state: dict) -> bool:
    """learner.py:1048-1091: one `isnan().any()` read back to the host per tensor, every update."""
    tensors = [*observations.values(), *next_state.values(), actions]
    return any([bool(torch.isnan(tensor).any()) for tensor in tensors])


def forward_batch(policy, batch: dict) -> dict:
    """learner.py:470-483, with get_observation_features (learner.py:1017-1041): a frozen pretrained
    encoder's features are computed once per batch, without gradients, and shared by every loss."""
    features, next_features = None, None
    if policy.config.vision_encoder_name is not None and policy.config.freeze_vision_encoder:
        with torch.no_grad():
            features = policy.actor.encoder.get_cached_image_features(batch["state"])
            next_features = policy.actor.encoder.get_cached_image_features(batch["next_state"])
    return {
        "action": batch["action"],
        "reward": batch["reward"],
        "state": batch["state"],
        "next_state": batch["next_state"],
        "done": batch["done"],
        "observation_feature": features,
        "next_observation_feature": next_features,
    }


def optimizer_step(optimizer, loss: torch.Tensor, parameters, max_norm: float) -> float:
    """zero_grad, backward, clip_grad_norm_ read back with .item(), step: learner.py:488-493 and kin."""
    optimizer.zero_grad()
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(parameters=parameters, max_norm=max_norm).item()
    optimizer.step()
    return grad_norm


def sac_update(policy, optimizers: dict, batch: dict, optimization_step: int) -> dict[str, float]:
    """learner.py:485-554 with utd_ratio=1 (the critic-only loop at learner.py:394-451 runs zero times)
    and no discrete critic. The losses are LeRobot's own (SACPolicy.forward); the .item() calls are the
    learner's logging reads, each a host sync on a GPU."""
    config, clip = policy.config, policy.config.grad_clip_norm
    loss_critic = policy.forward(batch, model=CRITIC)["loss_critic"]
    infos = {
        "critic_grad_norm": optimizer_step(
            optimizers[CRITIC], loss_critic, policy.critic_ensemble.parameters(), clip
        ),
        "loss_critic": loss_critic.item(),
    }
    if optimization_step % config.policy_update_freq == 0:
        for _ in range(config.policy_update_freq):
            loss_actor = policy.forward(batch, model=ACTOR)["loss_actor"]
            infos["actor_grad_norm"] = optimizer_step(
                optimizers[ACTOR], loss_actor, policy.actor.parameters(), clip
            )
            infos["loss_actor"] = loss_actor.item()
            loss_temperature = policy.forward(batch, model=TEMPERATURE)["loss_temperature"]
            infos["temperature_grad_norm"] = optimizer_step(
                optimizers[TEMPERATURE], loss_temperature, [policy.log_alpha], clip
            )
            infos["loss_temperature"] = loss_temperature.item()
            infos["temperature"] = policy.temperature  # log_alpha.exp().item()
    policy.update_target_networks()
    return infos


def run(
    obs: str = "state",
    encoder: str = "conv",
    critics: int = 10,
    batch: int = 256,
    image_size: int = 128,
    cameras: int = 2,
    state_dim: int = 14,
    action_dim: int = 4,
    seconds: float = 10.0,
    device: str = "auto",
    transitions: int = 10_000,
    torch_compile: bool = True,
    seed: int = 0,
) -> dict:
    """Times LeRobot's learner loop body (sample from its ReplayBuffer, NaN check, SAC update) and the
    update alone on one pre-sampled on-device batch. Raises LeRobotUnavailable without LeRobot 0.4.4."""
    if obs not in ("state", "pixels") or encoder not in ("conv", "resnet18"):
        raise ValueError(
            f"--obs must be state or pixels and --encoder conv or resnet18, got {obs}, {encoder}"
        )
    if min(critics, batch, state_dim, action_dim, image_size, transitions) < 1 or seconds <= 0:
        raise ValueError("--critics, --batch, --state-dim, --action-dim, --image-size, --seconds must be > 0")
    lerobot, stood_in = import_lerobot()
    torch_device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    )
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available")
    cameras = cameras if obs == "pixels" else 0
    encoder_name = encoder if obs == "pixels" else "conv"
    if torch_device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(torch_device)
    torch.manual_seed(seed)
    config, policy, optimizers = build_learner(
        lerobot,
        encoder_name,
        critics,
        state_dim,
        action_dim,
        cameras,
        image_size,
        torch_device,
        torch_compile,
    )
    replay = filled_replay(lerobot, config, replay_capacity(config, batch, transitions), seed)
    batches = replay.get_iterator(batch_size=batch, async_prefetch=config.async_prefetch, queue_size=2)
    step_count = 0

    def loop_step() -> None:  # learner.py:454-554, one optimization step of the learner's main loop
        nonlocal step_count
        sample = next(batches)
        check_nan_in_transition(sample["state"], sample["action"], sample["next_state"])
        sac_update(policy, optimizers, forward_batch(policy, sample), step_count)
        step_count += 1

    fixed = next(batches)

    def update_step() -> None:
        nonlocal step_count
        sac_update(policy, optimizers, forward_batch(policy, fixed), step_count)
        step_count += 1

    chunk = 10 if obs == "state" else 2
    warmup_start = time.perf_counter()
    for _ in range(3):  # warm-up: torch.compile (critics, DrQ shift), allocator, Adam state
        loop_step()
        update_step()
    synchronize(torch_device)
    warmup_s = time.perf_counter() - warmup_start
    updates_per_s, ms_per_update = timed_rate(loop_step, torch_device, seconds, chunk)
    update_only, update_only_ms = timed_rate(update_step, torch_device, seconds / 2, chunk)
    return {
        "implementation": f"lerobot-{LEROBOT_VERSION}",
        "updates_per_s": round(updates_per_s, 2),
        "ms_per_update": round(ms_per_update, 3),
        "update_only_updates_per_s": round(update_only, 2),
        "update_only_ms_per_update": round(update_only_ms, 3),
        "peak_mem_mb": round(peak_memory_mb(torch_device), 1),
        "obs": obs,
        "encoder": encoder_name if obs == "pixels" else None,
        "state_dim": state_dim,
        "action_dim": action_dim,
        "batch": batch,
        "critics": critics,
        "image_size": image_size if obs == "pixels" else None,
        "cameras": cameras,
        "device": str(torch_device),
        "replay_capacity": replay.capacity,
        "replay_storage_device": config.storage_device,
        "torch_compile": torch_compile,
        "warmup_s": round(warmup_s, 2),
        "stood_in_io_packages": stood_in,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "seconds": seconds,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Updates/s of LeRobot 0.4.4's SAC learner step (its SACPolicy, optimizers and "
        "ReplayBuffer, stepped as lerobot/rl/learner.py does) at the flags of `realrl bench learner`."
    )
    add_dataclass_arguments(parser, BenchLeRobotConfig)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = dataclass_from_args(BenchLeRobotConfig, args)
    try:
        result = run(
            **shape_kwargs(config),
            state_dim=config.state_dim,
            action_dim=config.action_dim,
            torch_compile=config.compile,
        )
    except (LeRobotUnavailable, ValueError) as error:
        print(f"lerobot_sac: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(key) for key in result)
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
