"""Actor-side latency: the policy an actor process runs, in the actor's composition (ActionPipeline:
base -> bounds) on the actor's CPU thread budget, stepping the task's twin. Per control step it
times the policy decision (`policy_*_ms`: frames -> encoder -> actor -> bounded action) and the
whole step (`step_*_ms`: the decision plus the env step, rendering included). By default a fresh
SAC policy with stochastic actions, as while training (a trained one costs the same); with a
policy MODEL, that policy as validate runs it (deterministic; shortcut steps, best-of-N with a
critic: what critic-ranked sampling costs per action)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from actors.composition import ActionPipeline
from actors.config import ValidateConfig
from actors.specs import policy_spec
from actors.validation import load_validated_policy, make_validation_env
from envs import make_env
from policies.configs import GaussianPolicyConfig
from policies.encoder_files import load_encoder_model, save_encoder_model
from policies.encoders import PRETRAINED_PREFIX, FrameTrunk
from policies.sac import GaussianPolicy


def percentile_ms(seconds: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(seconds) * 1e3, q)), 3)


def policy_config(encoder: str, spec, scratch: Path) -> GaussianPolicyConfig:
    """`pretrained` without a model: a random-weight frame trunk (the same architecture and cost)."""
    if encoder == "pretrained":
        model = scratch / "trunk.pt"
        save_encoder_model(model, FrameTrunk(spec.image_size), spec.cameras, {"objective": "none"})
        encoder = f"{PRETRAINED_PREFIX}{model}"
    elif encoder.startswith(PRETRAINED_PREFIX):
        load_encoder_model(encoder[len(PRETRAINED_PREFIX) :]).check_fits(spec.cameras, spec.image_size)
    return GaussianPolicyConfig(encoder=encoder, pretrained_encoder=False)


def run(
    task: str = "PickCube",
    obs: str = "pixels",
    encoder: str = "pretrained",
    image_size: int = 128,
    steps: int = 1000,
    warmup: int = 50,
    threads: int = 1,
    seed: int = 0,
    policy: str | None = None,
    sample_steps: int | None = None,
    best_of: int = 1,
    critic: str | None = None,
) -> dict:
    torch.set_num_threads(threads)
    about = {}
    if policy is None:
        env = make_env(task, obs_mode=obs, image_size=image_size)
        spec = policy_spec(env)
        with tempfile.TemporaryDirectory() as scratch:
            config = policy_config(encoder, spec, Path(scratch))
            acting = GaussianPolicy.build(spec, config, device="cpu", seed=seed).eval()
    else:
        chosen = ValidateConfig(task, policy, sample_steps=sample_steps, best_of=best_of, critic=critic)
        acting, about = load_validated_policy(chosen)
        env = make_validation_env(chosen, acting)
        spec = acting.spec
        encoder = acting.config_json().get("encoder", "") if spec.cameras else ""
        obs, image_size = ("pixels", spec.image_size) if spec.cameras else ("state", image_size)
    pipeline = ActionPipeline(acting)
    decide, whole = [], []
    obs_now, _ = env.reset(seed=seed)
    for step in range(warmup + steps):
        start = time.perf_counter()
        decision = pipeline.act(obs_now, deterministic=policy is not None)
        decided = time.perf_counter()
        obs_now, _, terminated, truncated, _ = env.step(decision.action)
        if step >= warmup:
            decide.append(decided - start)
            whole.append(time.perf_counter() - start)
        if terminated or truncated:
            obs_now, _ = env.reset()
            pipeline.reset()
    env.close()
    return {
        **about,
        "task": task,
        "obs": obs,
        "encoder": encoder.split(":")[0] if spec.cameras else None,
        "cameras": list(spec.cameras),
        "image_size": image_size if spec.cameras else None,
        "policy_p50_ms": percentile_ms(decide, 50),
        "policy_p99_ms": percentile_ms(decide, 99),
        "step_p50_ms": percentile_ms(whole, 50),
        "step_p99_ms": percentile_ms(whole, 99),
        "steps": steps,
        "torch_threads": torch.get_num_threads(),
    }
