"""What an actor needs to act: the `Policy` interface, policy networks and encoders, and the
policies themselves (RLPD's tanh-Gaussian SAC policy, HIL-SERL's hybrid gripper policy, BC, residual,
uniform random). Loadable without critics or optimisers (a run's critic is its own file, loaded only
to rank candidates: policies.verifier); imports only torch and the shared formats."""

from policies.base import Policy, PolicySpec
from policies.registry import POLICIES, build_policy, register_policy, with_encoder_model

__all__ = ["POLICIES", "Policy", "PolicySpec", "build_policy", "register_policy", "with_encoder_model"]
