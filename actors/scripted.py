"""The twin's scripted expert as a policy, so demos, baselines and `validate --policy scripted`
run through the same composition as a learned policy. It reads privileged sim state, so it only
exists for an env whose robot is the sim twin."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from actors.specs import policy_spec
from policies import Policy


class ScriptedPolicy(Policy):
    kind = "scripted"

    def __init__(self, env, noise: float = 0.0, seed: int | None = None) -> None:
        super().__init__(policy_spec(env))
        self.expert = env.unwrapped.scripted_expert(noise=noise, seed=seed)

    def reset(self) -> None:
        self.expert.reset()

    def act(self, obs: dict[str, Any], deterministic: bool = False) -> np.ndarray:
        return np.asarray(self.expert(), dtype=np.float32)

    def act_batch(
        self, state: torch.Tensor, images: dict[str, torch.Tensor], deterministic: bool = False
    ) -> torch.Tensor:
        if len(state) != 1:
            raise ValueError("the scripted expert acts in one env at a time (it reads that env's sim state)")
        return torch.as_tensor(self.act({}), device=self.device).unsqueeze(0)
