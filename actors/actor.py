"""`realrl actor`: the process on the robot PC. It steps the env (sim twin or real robot) with the
newest policy the learner sent, run through the actor's composition (actors.composition), turns each
step into a step record and hands it to the transport thread, so the control loop never waits for
the network. It builds and loads only a policy (policies/), never critics or optimisers. Weights
are swapped in between steps and every record names the policy version that chose its action and
the stage that produced it."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from actors.composition import ActionPipeline
from actors.config import ActorConfig
from actors.specs import policy_spec, record_spec
from actors.transport import ActorTransport
from envs import DiscreteGripper, make_env, resolve_task_id
from formats.files import DirectoryLock, DirectoryLocked
from formats.wire import StepRecord, encode_step

_log = logging.getLogger(__name__)
SPOOL_ROOT = Path.home() / ".cache" / "realrl" / "spool"
_RESUME_FILL = 0.9  # a held actor acts again once the spool budget is at most this full


def claim_spool(
    actor_id: str | None, spool: str | None, curve_secret: str | None = None, root: Path | None = None
) -> tuple[str, DirectoryLock]:
    """This process's actor id and its locked spool directory. Two processes never share a spool
    (one would delete the other's records) nor, by default, an id: with CURVE keys the id is the
    key's name (NAME.key_secret: the learner lets that key in only as NAME); otherwise, without
    --actor-id and --spool, it is <host>-<N> for the first slot N that no running actor holds, so a
    restarted actor takes its slot back and resends what it left; with only --spool it is
    <host>-<hash of the path>, stable across restarts."""
    host = socket.gethostname()
    root = root or SPOOL_ROOT
    if actor_id is None and curve_secret is not None:
        actor_id = Path(curve_secret).name.removesuffix(".key_secret")
    if spool is not None:
        path = Path(spool).expanduser().resolve()
        name = actor_id or f"{host}-{hashlib.sha1(str(path).encode()).hexdigest()[:6]}"
        return name, DirectoryLock(path, "spool")
    if actor_id is not None:
        return actor_id, DirectoryLock(root / actor_id, f"actor {actor_id!r}: spool")
    for slot in range(1000):
        try:
            return f"{host}-{slot}", DirectoryLock(root / f"{host}-{slot}", "spool")
        except DirectoryLocked:
            continue
    raise ValueError(f"{root}: 1000 actors of this host are running; give --actor-id and --spool")


class Actor:
    def __init__(self, config: ActorConfig) -> None:
        if config.robot != "sim":
            raise ValueError(
                f"--robot {config.robot!r}: only the sim twin is available so far (a real arm needs "
                "`realrl robot-server`, not built yet)"
            )
        self.config = config
        self.actor_id, self.spool_lock = claim_spool(config.actor_id, config.spool, config.curve_secret)
        self.session = uuid.uuid4().hex[:12]
        self.task = resolve_task_id(config.task)
        self.env = make_env(self.task, obs_mode=config.obs, image_size=config.image_size)
        self.spec = record_spec(self.env)
        hello = {"spec": self.spec.to_json(), "task": self.task, "obs": config.obs}
        self.transport = ActorTransport(
            config.transport(), self.actor_id, self.session, self.spool_lock.directory, hello
        )
        self.next_seq = 0  # records handed to the transport: seqs never skip, so acks never span a gap
        self.dropped = 0  # records not kept (--on-spool-full drop)
        self.policy_version = -1
        self.failure: str | None = None  # why the control loop itself failed
        self.policy = None
        self.pipeline: ActionPipeline | None = None

    def run(self, stop: threading.Event) -> dict[str, Any]:
        """Act until `stop` is set, the learner says training is over, or `max_steps`; then wait
        (bounded) for the last acks. Returns the final summary (with `error` when the actor had to
        stop: refused by the learner, or its link failed)."""
        self.transport.start()
        _log.info(
            "actor %s (session %s) waiting for the learner at %s",
            self.actor_id,
            self.session,
            self.config.learner,
        )
        try:
            if self._wait_for_policy(stop):
                self._act(stop)
        except Exception as error:  # noqa: BLE001 (the final line must come, with the reason)
            _log.exception("the actor failed")
            self.failure = f"{type(error).__name__}: {error}"
        finally:
            self.transport.close(
                self.config.wait_acks_s if not self.transport.error else 0, self.next_seq - 1
            )
            self.env.close()
            self.spool_lock.release()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """The final line. steps_recorded == steps_acked + steps_spooled + steps_dropped, always:
        every record the actor made is acked by the learner, in the spool for the next session to
        resend, or counted as dropped (not kept, not writable, or found damaged in the spool)."""
        summary = {
            "actor_id": self.actor_id,
            "session": self.session,
            "steps_recorded": self.steps,
            "steps_acked": self.transport.acked_through + 1 - len(self._lost_and_skipped()),
            "steps_spooled": len(self.transport.spool),
            "steps_dropped": self.dropped + self.transport.unspooled + self.transport.spool.damaged,
            "policy_version": self.policy_version,
        }
        if self.failure or self.transport.error:
            summary["error"] = self.failure or self.transport.error
        return summary

    @property
    def steps(self) -> int:
        """Records made (env steps taken): each was handed to the transport or dropped."""
        return self.next_seq + self.dropped

    def _lost_and_skipped(self) -> list[int]:
        """This session's records found damaged in the spool that the learner's ack now covers (it
        was told they are gone): covered, but never delivered."""
        return [seq for seq in self.transport.spool.lost if seq <= self.transport.acked_through]

    def _going(self, stop: threading.Event) -> bool:
        parent = self.config.parent_pid
        if parent and not stop.is_set() and os.getppid() != parent:  # reparented: the parent died
            _log.warning("the process that started this actor (PID %d) is gone: stopping", parent)
            stop.set()
        return not (stop.is_set() or self.transport.ended.is_set())

    def _wait_for_policy(self, stop: threading.Event) -> bool:
        """Block until the learner's welcome and first weights came (nothing to act with before)."""
        while self._going(stop):
            if self.transport.welcomed.wait(0.05):
                break
        if not self.transport.welcomed.is_set() or not self._going(stop):
            return False
        self._build_policy(self.transport.welcome)
        while self._going(stop):
            if self._swap_weights():
                return True
            time.sleep(0.01)
        return False

    def _build_policy(self, welcome: dict[str, Any]) -> None:
        """The policy the learner trains (kind, spec, config from its welcome), fresh weights until
        the first push arrives; uniform random actions for the learner's `random_steps` first."""
        import torch

        from policies import build_policy, with_encoder_model
        from policies.random import RandomPolicy
        from policies.residual import with_base_model

        torch.set_num_threads(self.config.threads)
        description = with_encoder_model(welcome["policy"], self.config.encoder_model)
        description = with_base_model(description, self.config.base_policy)
        self.policy = build_policy(description, device="cpu", seed=self.config.seed)
        self.policy.spec.check(policy_spec(self.env), "the learner's policy does not fit this env")
        if self.policy.discrete_gripper:
            self.env = DiscreteGripper(self.env)
        explore = RandomPolicy(self.policy.spec, seed=self.config.seed)
        self.pipeline = ActionPipeline(
            self.policy, explore=explore, explore_steps=int(welcome.get("random_steps", 0))
        )

    def _swap_weights(self) -> bool:
        weights = self.transport.take_weights()
        if weights is None:
            return False
        self.policy_version, tensors = weights
        self.policy.load_weights(tensors)
        return True

    def _act(self, stop: threading.Event) -> None:
        c = self.config
        period = 1.0 / c.control_hz if c.control_hz else 0.0
        episode = t = 0
        obs, _ = self.env.reset(seed=c.seed * 1_000_003 + episode)
        self.pipeline.reset()
        next_tick = time.monotonic()
        while self._going(stop):
            if c.max_steps and self.steps >= c.max_steps:
                break
            self._swap_weights()  # step boundary: never mid-step
            decision = self.pipeline.act(obs)
            next_obs, reward, terminated, truncated, info = self.env.step(decision.action)
            record = StepRecord(
                actor=self.actor_id,
                session=self.session,
                seq=self.next_seq,
                episode=episode,
                t=t,
                state=np.asarray(obs["state"], dtype=np.float32),
                images=dict(obs.get("images", {})),
                action=decision.action,
                reward=float(reward),
                terminated=bool(terminated),
                truncated=bool(truncated),
                success=bool(info.get("success", False)),
                intervened=decision.intervened or bool(info.get("intervened", False)),
                safety_margin=float(info.get("safety_margin", float("inf"))),
                policy_version=self.policy_version,
                action_source=decision.source,
                filter_delta=decision.filter_delta,
                final_state=np.asarray(next_obs["state"], dtype=np.float32),
                final_images=dict(next_obs.get("images", {})),
            )
            if self.pipeline.residual is not None:  # the learner's replay keeps the base's proposals
                record.base_action = decision.base_action
                if terminated or truncated:
                    record.final_base_action = self.pipeline.propose(next_obs)
            self._hand_over(record, encode_step(record, image_codec=c.image_codec), stop)
            t += 1
            obs = next_obs
            if terminated or truncated:
                episode, t = episode + 1, 0
                obs, _ = self.env.reset(seed=c.seed * 1_000_003 + episode)
                self.pipeline.reset()
            if period:
                next_tick = max(next_tick + period, time.monotonic() - period)  # no burst after a hold
                time.sleep(max(0.0, next_tick - time.monotonic()))

    def _hand_over(self, record: StepRecord, frames: list, stop: threading.Event) -> None:
        """Give the step's record to the transport. When the spool budget cannot take it: with
        --on-spool-full wait, hold the robot still and wait for acks to free room (one log line per
        state change); with drop, count it and go on. Either way no record vanishes uncounted."""
        if self.transport.send(record.seq, frames):
            self.next_seq += 1
            return
        if self.config.on_spool_full == "drop":
            self.dropped += 1
            if self.dropped & (self.dropped - 1) == 0:  # the 1st, 2nd, 4th, ... drop
                _log.warning(
                    "spool full (%s): %d steps dropped so far", self.transport.spool_usage(), self.dropped
                )
            return
        self.env.unwrapped.hold_still()
        _log.warning(
            "spool full (%s): holding the robot still until the learner acks", self.transport.spool_usage()
        )
        while self._going(stop):
            # Resume only once a tenth of the budget is free, so a draining backlog does not
            # alternate holding and acting (and their log lines) step by step.
            if self.transport.send(record.seq, frames, fill=_RESUME_FILL):
                self.next_seq += 1
                _log.info("spool has room again: acting")
                return
            time.sleep(0.01)
        self.transport.send(record.seq, frames, force=True)  # stopped: kept past the budget, resent later
        self.next_seq += 1
