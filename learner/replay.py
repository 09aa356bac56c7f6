"""Replay storage for the learner: each observation is stored once in a circular slot array and a
transition's next observation is found by index, with n-step returns and RLPD demo/online mixing.

Layout. An episode of T steps takes T + 1 consecutive slots (modulo capacity). Slot t < T holds
obs_t and the step record (action_t, reward_t, terminated_t, truncated_t); its next observation is
slot t + 1. The last slot holds only the final observation. `valid[slot]` marks a transition start
whose next slot holds the same episode's next observation; writing an observation into a slot
clears that slot's flag, so the newest slot never starts a transition and a lookahead never walks
into overwritten or older data. Every slot also carries its episode id, checked by the lookahead.

`sample` makes no host syncs: it draws ranks in [0, len) on the buffer's device and finds the
matching valid slots by a search over their running count; `len` and the counters live on the host."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from formats.episodes import Episode, iter_episodes, read_manifest
from learner.batch import Batch

_log = logging.getLogger(__name__)

ENCODE_CHUNK = 256  # frames per camera per encoder pass when caching maps in bulk (demos, a restore)


class FrameMaps(Protocol):
    """A frozen encoder's per-frame maps, for the replay to cache: uint8 {camera: (N, H, W, 3)} on
    the buffer's device -> fp16 {camera: (N, *map_shape)} on the buffer's device."""

    map_shape: tuple[int, int, int]

    def __call__(self, frames: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...


# Where the incoming step stream stands. CLOSED: no episode open, `add` needs `start_episode`.
# OPEN: `_last_slot` holds the observation the next step starts from. BROKEN: a rejected record
# left no usable observation; the next step is dropped and its next_obs restarts the chain.
_CLOSED, _OPEN, _BROKEN = 0, 1, 2


class ReplayBuffer:
    """Circular replay of observations stored once, sampled as (n-step) transitions.

    `capacity` counts observation slots: an episode of T steps uses T + 1 of them. Records with
    NaN/inf or wrong shapes/dtypes are rejected (`rejected` counts them) and never stored; nothing
    pairs across a rejected step. An n-step return stops early at a terminated/truncated step or
    where the stored episode ends (an episode still being recorded gives shorter returns for its
    newest steps, bootstrapping from the newest observation)."""

    def __init__(
        self,
        capacity: int,
        state_dim: int,
        action_dim: int,
        image_shapes: Mapping[str, tuple[int, int, int]] | None = None,
        *,
        device: torch.device | str = "cpu",
        n_step: int = 1,
        gamma: float = 0.99,
        seed: int = 0,
        frame_maps: FrameMaps | None = None,
        base_action_dim: int = 0,
    ) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2 slots (a transition needs two), got {capacity}")
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
        self.capacity, self.state_dim, self.action_dim = int(capacity), int(state_dim), int(action_dim)
        self.image_shapes = {
            name: tuple(int(d) for d in shape) for name, shape in (image_shapes or {}).items()
        }
        for name, shape in self.image_shapes.items():
            if len(shape) != 3 or shape[2] != 3:
                raise ValueError(f"camera {name!r}: image shape must be (H, W, 3), got {shape}")
        self.device = torch.device(device)
        self.n_step, self.gamma, self.seed = int(n_step), float(gamma), int(seed)

        c, dev = self.capacity, self.device
        # Frames dominate memory: torch.empty leaves their pages untouched until written.
        self.state = torch.zeros(c, self.state_dim, dtype=torch.float32, device=dev)
        self.images = {
            name: torch.empty(c, *shape, dtype=torch.uint8, device=dev)
            for name, shape in self.image_shapes.items()
        }
        # A frozen encoder's maps of every stored frame, computed as the frame is written: sampling
        # returns them instead of the frames. A derived cache: never saved, recomputed on a load.
        self.frame_maps = frame_maps if self.image_shapes else None
        self.maps = {}
        if self.frame_maps is not None:
            shape = self.frame_maps.map_shape
            self.maps = {n: torch.empty(c, *shape, dtype=torch.float16, device=dev) for n in self.images}
        self.action = torch.zeros(c, self.action_dim, dtype=torch.float32, device=dev)
        # A residual run's base-policy action at each observation (obs["base_action"]), so that the
        # update sees the base's proposal at obs and next_obs (for the final observation too).
        self.base_action_dim = int(base_action_dim)
        self.base_action = torch.zeros(c, self.base_action_dim, dtype=torch.float32, device=dev)
        self.reward = torch.zeros(c, dtype=torch.float32, device=dev)
        self.terminated = torch.zeros(c, dtype=torch.bool, device=dev)
        self.truncated = torch.zeros(c, dtype=torch.bool, device=dev)
        self.valid = torch.zeros(c, dtype=torch.bool, device=dev)
        self.episode_id = torch.full((c,), -1, dtype=torch.int64, device=dev)
        # Which actor step record delivered the slot's observation (-1: demos, final observations),
        # so exactly-once delivery can be checked against what the actors recorded.
        self.record_id = torch.full((c,), -1, dtype=torch.int64, device=dev)
        # Host mirror of `valid`, so len() and overwrite bookkeeping never read the device.
        self._valid_host = np.zeros(c, dtype=bool)
        self._discounts = torch.tensor([self.gamma**k for k in range(self.n_step + 1)], device=dev)
        self._offsets = torch.arange(self.n_step, device=dev)
        self._generator = torch.Generator(device=dev)
        self._generator.manual_seed(self.seed)
        self._lock = threading.Lock()

        self._ptr = 0  # next slot to write
        self._written = 0  # slots claimed since the buffer was created (the replay log's clock)
        self._num_valid = 0
        self._next_episode = 0
        self._episode = -1  # id of the episode the stream is writing
        self._last_slot = -1  # slot of the newest observation of that episode
        self._chain = _CLOSED
        self._version = 0  # bumped whenever `valid` changes; the sampler's cumulative count follows
        self._cdf, self._cdf_version = torch.zeros(0, dtype=torch.int64, device=dev), -1
        self.rejected = 0  # records refused for NaN/inf or wrong shapes/dtypes
        self.unpaired = 0  # well-formed steps dropped because the step before them was rejected

    # ------------------------------------------------------------------ public API

    def __len__(self) -> int:
        """Number of valid transition starts."""
        return self._num_valid

    @property
    def nbytes(self) -> int:
        tensors = [self.state, self.action, self.base_action, self.reward, self.terminated, self.truncated]
        tensors.append(self.valid)
        tensors += [self.episode_id, self.record_id, *self.images.values(), *self.maps.values()]
        return sum(t.numel() * t.element_size() for t in tensors) + self._valid_host.nbytes

    @property
    def spec(self) -> dict[str, Any]:
        """The observation spec in the demo manifest's terms, plus the action dim."""
        return {
            "state": [self.state_dim],
            "images": {name: list(shape) for name, shape in self.image_shapes.items()},
            "action_dim": self.action_dim,
        }

    def start_episode(self, obs: Mapping[str, Any]) -> bool:
        """Begin an episode at `obs`. A malformed obs is rejected (returns False) and the next step's
        next_obs restarts the chain."""
        with self._lock:
            return self._start(obs)

    def add(self, action, reward, terminated, truncated, next_obs: Mapping[str, Any]) -> bool:
        """Store the step from the current observation; True when stored. `terminated` or
        `truncated` ends the episode: the next `add` then needs `start_episode`."""
        with self._lock:
            return self._add(action, reward, terminated, truncated, next_obs)

    def add_episode(self, episode: Episode, record_ids: np.ndarray | None = None) -> None:
        """Store a whole recorded episode (demos, or an actor's episode put together from its step
        records, whose ids go in `record_ids`, one per observation). Ends any episode open in the
        step stream. An episode with non-finite values goes step by step, so the rejection rules
        apply to it. A 0-step episode (one observation) stores its observation and no transition."""
        self._check_episode(episode)
        if record_ids is not None and np.shape(record_ids) != (len(episode) + 1,):
            raise ValueError(f"record_ids needs {len(episode) + 1} entries, got {np.shape(record_ids)}")
        reward = np.asarray(episode.reward, dtype=np.float64)
        arrays = [episode.states, episode.action, reward]
        arrays += [] if episode.base_action is None else [episode.base_action]
        finite = all(np.isfinite(a).all() for a in arrays)
        with self._lock:
            if finite:
                self._store_episode(episode, record_ids)
                return
            self._start(self._episode_obs(episode, 0))
            for t in range(len(episode)):
                step = (episode.action[t], episode.reward[t], episode.terminated[t], episode.truncated[t])
                self._add(*step, self._episode_obs(episode, t + 1))
            self._chain = _CLOSED

    def load_demos(self, directory: str | Path, transform: Callable[[Episode], Episode] | None = None) -> int:
        """Load every episode of a demo directory, each passed through `transform` if given (e.g.
        the hybrid agent's tri-state gripper labels); returns how many were loaded."""
        manifest = read_manifest(directory)
        if manifest["obs_spec"] is None:
            return 0
        dataset = {
            "state": list(manifest["obs_spec"]["state"]),
            "images": {name: list(shape) for name, shape in manifest["obs_spec"]["images"].items()},
            "action_dim": int(manifest["action_dim"]),
        }
        if dataset != self.spec:
            raise ValueError(
                f"{directory}: dataset spec {dataset} does not match the buffer's spec {self.spec}"
            )
        count = 0
        for episode in iter_episodes(directory):
            self.add_episode(transform(episode) if transform else episode)
            count += 1
        return count

    def stored_states(self) -> torch.Tensor:
        """The state of every valid transition start, (len, state_dim) (e.g. for normalisation)."""
        with self._lock:
            return self.state[torch.as_tensor(self._valid_host, device=self.device)].clone()

    def sample(self, batch_size: int) -> Batch:
        """`batch_size` transitions drawn uniformly (with replacement) over valid starts."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        with self._lock:
            if self._num_valid == 0:
                raise RuntimeError("ReplayBuffer.sample: the buffer holds no valid transitions")
            # The u-th valid slot for u uniform in [0, len): the count is known on the host, so
            # this needs no sync, and the integer search is exact for any capacity.
            if self._cdf_version != self._version:
                self._cdf, self._cdf_version = torch.cumsum(self.valid, dim=0), self._version
            rank = torch.randint(
                self._num_valid, (batch_size,), generator=self._generator, device=self.device
            )
            start = torch.searchsorted(self._cdf, rank, right=True)
            return self._gather(start)

    @property
    def written(self) -> int:
        """Slots claimed since the buffer was created; slot of counter k is k % capacity."""
        return self._written

    def state_dict(self) -> dict[str, Any]:
        """Everything, for torch.save: `meta_state_dict()` plus the live slot storage.

        The frames are the live storage (a copy would double the largest allocation): frames
        written after this call can land in the saved file, so checkpoint with the writers paused
        where an exact copy matters. Training checkpoints use the incremental ReplayLog instead."""
        with self._lock:
            return {
                **self._meta(),
                "tensors": {
                    name: t if name.startswith("image_") else t.clone() for name, t in self._tensors().items()
                },
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with self._lock:
            self._check_config(state["config"])
            for name, target in self._tensors().items():
                target.copy_(state["tensors"][name])
            self._load_meta(state)
            self._encode_slots(torch.arange(min(self._written, self.capacity), device=self.device))

    def meta_state_dict(self) -> dict[str, Any]:
        """The small part of the state: config, sampler RNG, counters and the `valid` flags (one
        byte per slot, rewritten whole since overwrites clear flags of old slots). With the slots
        from `export_slots` it restores the buffer exactly."""
        with self._lock:
            return {**self._meta(), "valid": self.valid.clone()}

    def load_meta_state_dict(self, state: Mapping[str, Any]) -> None:
        with self._lock:
            self._check_config(state["config"])
            self.valid.copy_(state["valid"])
            self._load_meta(state)

    def export_slots(self, first: int, end: int) -> dict[str, torch.Tensor]:
        """Copies of the per-slot data of write counters [first, end) (clipped to what the ring
        still holds), on the CPU, for an incremental replay log."""
        with self._lock:
            if not 0 <= first <= end <= self._written:
                raise ValueError(f"export_slots: need 0 <= {first} <= {end} <= written {self._written}")
            first = max(first, end - self.capacity)
            index = torch.arange(first, end, device=self.device) % self.capacity
            slots = {name: t[index].cpu() for name, t in self._tensors().items() if name != "valid"}
            return {"first": first, "end": end, **slots}

    def import_slots(self, slots: Mapping[str, Any]) -> None:
        """Write back what `export_slots` returned (flags and counters come from the meta state)."""
        with self._lock:
            index = torch.arange(slots["first"], slots["end"], device=self.device) % self.capacity
            for name, target in self._tensors().items():
                if name != "valid":
                    target[index] = slots[name].to(self.device)
            self._encode_slots(index)

    def _meta(self) -> dict[str, Any]:
        return {
            "config": self._config(),
            "generator": self._generator.get_state(),
            "counters": {
                "ptr": self._ptr,
                "written": self._written,
                "next_episode": self._next_episode,
                "episode": self._episode,
                "last_slot": self._last_slot,
                "chain": self._chain,
                "rejected": self.rejected,
                "unpaired": self.unpaired,
            },
        }

    def _check_config(self, config: Mapping[str, Any]) -> None:
        if dict(config) != self._config():
            raise ValueError(
                f"replay checkpoint config {dict(config)} does not match this buffer's {self._config()}"
            )

    def _load_meta(self, state: Mapping[str, Any]) -> None:
        self._generator.set_state(state["generator"].cpu())
        self._valid_host[:] = self.valid.cpu().numpy()
        self._num_valid = int(self._valid_host.sum())
        self._version += 1
        counters = state["counters"]
        self._ptr, self._written = int(counters["ptr"]), int(counters["written"])
        self._next_episode = int(counters["next_episode"])
        self._episode, self._last_slot = int(counters["episode"]), int(counters["last_slot"])
        self._chain = int(counters["chain"])
        self.rejected, self.unpaired = int(counters["rejected"]), int(counters["unpaired"])

    # ------------------------------------------------------------------ sampling

    def _gather(self, start: torch.Tensor) -> Batch:
        """Build n-step transitions from start slots, vectorised over a (B, n) offset grid."""
        grid = (start[:, None] + self._offsets) % self.capacity  # (B, n)
        same_episode = self.episode_id[grid] == self.episode_id[start][:, None]
        done = self.terminated[grid] | self.truncated[grid]
        # Step k counts while steps 0..k are valid starts of this episode and none before k ended it.
        # (Given how slots are written, `valid` alone implies the other two; they are kept as guards.)
        ended_before = torch.cumsum(done, dim=1) - done.long() > 0
        alive = torch.cumprod((self.valid[grid] & same_episode & ~ended_before).long(), dim=1).bool()
        steps = alive.sum(dim=1)  # (B,) m in 1..n; step 0 is always alive for a valid start
        weights = alive.float() * self._discounts[: self.n_step]
        reward = (weights * self.reward[grid]).sum(dim=1)
        next_slot = (start + steps) % self.capacity
        base = self.base_action_dim > 0
        batch = Batch(
            state=self.state[start],
            action=self.action[start],
            reward=reward,
            discount=self._discounts[steps],
            terminated=(alive & self.terminated[grid]).any(dim=1).float(),
            truncated=(alive & self.truncated[grid]).any(dim=1).float(),
            next_state=self.state[next_slot],
            base_action=self.base_action[start] if base else None,
            next_base_action=self.base_action[next_slot] if base else None,
        )
        if self.maps:  # the frames stay in the buffer: the update reads only their maps
            batch.maps = {name: maps[start] for name, maps in self.maps.items()}
            batch.next_maps = {name: maps[next_slot] for name, maps in self.maps.items()}
        else:
            batch.images = {name: frames[start] for name, frames in self.images.items()}
            batch.next_images = {name: frames[next_slot] for name, frames in self.images.items()}
        assert batch.reward.shape == batch.discount.shape == (len(start),)
        return batch

    # ------------------------------------------------------------------ writing (lock held)

    def _start(self, obs: Mapping[str, Any]) -> bool:
        problem = self._obs_problem(obs)
        if problem is not None:
            self._reject(f"start obs: {problem}")
            self._chain = _BROKEN
            return False
        self._begin(obs)
        return True

    def _add(self, action, reward, terminated, truncated, next_obs: Mapping[str, Any]) -> bool:
        if self._chain == _CLOSED:
            raise RuntimeError("ReplayBuffer.add: no episode open; call start_episode(obs) first")
        problem = self._step_problem(action, reward, terminated, truncated)
        obs_problem = self._obs_problem(next_obs)
        done = _is_true(terminated) or _is_true(truncated)
        if problem is None and obs_problem is None and self._chain == _OPEN:
            self._store_step(action, reward, terminated, truncated, next_obs)
            self._chain = _CLOSED if done else _OPEN
            return True
        if problem is not None or obs_problem is not None:
            self._reject(problem or f"next obs: {obs_problem}")
        else:
            self.unpaired += 1
        # Nothing pairs across the gap: a usable next_obs starts a fresh episode.
        if done:
            self._chain = _CLOSED
        elif obs_problem is None:
            self._begin(next_obs)
        else:
            self._chain = _BROKEN
        return False

    def _begin(self, obs: Mapping[str, Any]) -> None:
        self._episode = self._next_episode
        self._next_episode += 1
        self._last_slot = self._write_obs(obs)
        self._chain = _OPEN

    def _claim_one(self) -> int:
        slot = self._ptr
        if self._valid_host[slot]:
            self._valid_host[slot] = False
            self._num_valid -= 1
            self.valid[slot] = False
            self._version += 1
        self.episode_id[slot] = self._episode
        self.record_id[slot] = -1
        self._ptr = (slot + 1) % self.capacity
        self._written += 1
        return slot

    def _claim(self, count: int) -> tuple[np.ndarray, torch.Tensor]:
        """Take the next `count` slots for the current episode: clear their old flags."""
        slots = (self._ptr + np.arange(count)) % self.capacity
        self._num_valid -= int(self._valid_host[slots].sum())
        self._valid_host[slots] = False
        slots_t = torch.as_tensor(slots, device=self.device)
        self.valid[slots_t] = False
        self.episode_id[slots_t] = self._episode
        self._ptr = int((self._ptr + count) % self.capacity)
        self._written += count
        self._version += 1
        return slots, slots_t

    def _write_obs(self, obs: Mapping[str, Any]) -> int:
        slot = self._claim_one()
        self.state[slot] = torch.as_tensor(np.asarray(obs["state"], dtype=np.float32), device=self.device)
        if self.base_action_dim:
            base = np.asarray(obs["base_action"], dtype=np.float32)
            self.base_action[slot] = torch.as_tensor(base, device=self.device)
        for name in self.image_shapes:
            self.images[name][slot] = torch.as_tensor(np.asarray(obs["images"][name]), device=self.device)
        self._encode_slots(torch.tensor([slot], device=self.device))
        return slot

    def _store_step(self, action, reward, terminated, truncated, next_obs: Mapping[str, Any]) -> None:
        slot = self._last_slot
        self.action[slot] = torch.as_tensor(np.asarray(action, dtype=np.float32), device=self.device)
        self.reward[slot] = float(reward)
        self.terminated[slot] = bool(terminated)
        self.truncated[slot] = bool(truncated)
        self._last_slot = self._write_obs(next_obs)
        self.valid[slot] = True
        self._valid_host[slot] = True
        self._num_valid += 1
        self._version += 1

    def _store_episode(self, episode: Episode, record_ids: np.ndarray | None = None) -> None:
        """Bulk write of a finite, checked episode; an episode longer than the buffer keeps its tail."""
        skip = max(0, len(episode) + 1 - self.capacity)
        steps = len(episode) - skip
        self._episode = self._next_episode
        self._next_episode += 1
        host_slots, slots = self._claim(steps + 1)

        first = int(host_slots[0])
        contiguous = first + steps + 1 <= self.capacity  # no wrap: a slice copy beats an index put

        def put(target: torch.Tensor, rows: np.ndarray, index: torch.Tensor, dtype) -> None:
            values = torch.as_tensor(np.ascontiguousarray(rows, dtype=dtype), device=self.device)
            if contiguous:
                target[first : first + len(values)].copy_(values)
            else:
                target[index] = values

        put(self.state, episode.states[skip:], slots, np.float32)
        if self.base_action_dim:
            put(self.base_action, episode.base_action[skip:], slots, np.float32)
        ids = np.full(steps + 1, -1) if record_ids is None else np.asarray(record_ids)[skip:]
        put(self.record_id, ids, slots, np.int64)
        for name in self.image_shapes:
            put(self.images[name], episode.images[name][skip:], slots, np.uint8)
        starts = slots[:steps]
        put(self.action, episode.action[skip:], starts, np.float32)
        put(self.reward, episode.reward[skip:], starts, np.float32)
        put(self.terminated, episode.terminated[skip:], starts, np.bool_)
        put(self.truncated, episode.truncated[skip:], starts, np.bool_)
        self._encode_slots(slots)
        self.valid[starts] = True
        self._valid_host[host_slots[:steps]] = True
        self._num_valid += steps
        self._chain = _CLOSED

    def _encode_slots(self, slots: torch.Tensor) -> None:
        """(Re)compute the cached maps of the frames in `slots`, in chunks of ENCODE_CHUNK frames."""
        if self.frame_maps is None:
            return
        for chunk in slots.split(ENCODE_CHUNK):
            maps = self.frame_maps({name: frames[chunk] for name, frames in self.images.items()})
            for name, target in self.maps.items():
                target[chunk] = maps[name]

    def _tensors(self) -> dict[str, torch.Tensor]:
        tensors = {
            "state": self.state,
            "action": self.action,
            **({"base_action": self.base_action} if self.base_action_dim else {}),
            "reward": self.reward,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "valid": self.valid,
            "episode_id": self.episode_id,
            "record_id": self.record_id,
        }
        tensors.update({f"image_{name}": frames for name, frames in self.images.items()})
        return tensors

    def _config(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "image_shapes": {name: list(shape) for name, shape in self.image_shapes.items()},
            "n_step": self.n_step,
            "gamma": self.gamma,
            **({"base_action_dim": self.base_action_dim} if self.base_action_dim else {}),
        }

    # ------------------------------------------------------------------ checks

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        if self.rejected & (self.rejected - 1) == 0:  # log the 1st, 2nd, 4th, 8th, ... rejection
            _log.warning("replay: rejected a record (%s); %d rejected so far", reason, self.rejected)

    def _obs_problem(self, obs: Any) -> str | None:
        if not isinstance(obs, Mapping) or "state" not in obs:
            return "not a dict with a 'state' entry"
        problem = _vector_problem("state", obs["state"], self.state_dim)
        if problem is None and self.base_action_dim:
            problem = _vector_problem("base_action", obs.get("base_action"), self.base_action_dim)
        if problem is not None:
            return problem
        images = obs.get("images") or {}
        if not isinstance(images, Mapping) or set(images) != set(self.image_shapes):
            names = sorted(images) if isinstance(images, Mapping) else type(images).__name__
            return f"cameras {names}, expected {sorted(self.image_shapes)}"
        for name, shape in self.image_shapes.items():
            frame = images[name]
            if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != shape:
                got = (
                    f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
                )
                return f"image {name!r} must be uint8 {shape}, got {got}"
        return None

    def _step_problem(self, action, reward, terminated, truncated) -> str | None:
        problem = _vector_problem("action", action, self.action_dim)
        if problem is not None:
            return problem
        for name, flag in (("terminated", terminated), ("truncated", truncated)):
            if not isinstance(flag, (bool, np.bool_)):
                return f"{name} must be a bool, got {type(flag).__name__}"
        if isinstance(reward, (bool, np.bool_)) or not isinstance(
            reward, (int, float, np.integer, np.floating)
        ):
            return f"reward must be a real number, got {type(reward).__name__}"
        if not math.isfinite(float(reward)):
            return f"reward is {float(reward)}"
        return None

    def _check_episode(self, episode: Episode) -> None:
        if len(episode) or len(episode.states) != 1:
            episode.validate("add_episode")
        got = {
            "state": list(episode.states.shape[1:]),
            "images": {name: list(frames.shape[1:]) for name, frames in episode.images.items()},
            "action_dim": episode.action.shape[1] if episode.action.ndim == 2 else episode.action.shape[1:],
        }
        if got != self.spec:
            raise ValueError(f"episode spec {got} does not match the buffer's spec {self.spec}")
        if self.base_action_dim and episode.base_action is None:
            raise ValueError(
                "this buffer stores base actions: the episode has none (relabel it with the base)"
            )
        ended = np.asarray(episode.terminated, bool) | np.asarray(episode.truncated, bool)
        if ended[:-1].any():
            raise ValueError(
                f"episode ends at step {int(np.argmax(ended))} of {len(episode)} (only the last may)"
            )

    @staticmethod
    def _episode_obs(episode: Episode, t: int) -> dict[str, Any]:
        obs: dict[str, Any] = {"state": episode.states[t]}
        if episode.base_action is not None:
            obs["base_action"] = episode.base_action[t]
        if episode.images:
            obs["images"] = {name: frames[t] for name, frames in episode.images.items()}
        return obs


def _is_true(flag: Any) -> bool:
    return isinstance(flag, (bool, np.bool_)) and bool(flag)


def _vector_problem(name: str, value: Any, dim: int) -> str | None:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        return f"{name} is not an array ({error})"
    if array.dtype.kind != "f":
        return f"{name} must be floating point, got {array.dtype}"
    if array.shape != (dim,):
        return f"{name} must have shape ({dim},), got {array.shape}"
    if not np.isfinite(array).all():
        return f"{name} has NaN/inf"
    return None


class MixedSampler:
    """RLPD symmetric sampling: `round(batch_size * demo_fraction)` rows from the demo buffer, the
    rest from the online one, concatenated (demo rows first). An empty buffer gives its share to
    the other."""

    def __init__(self, demo: ReplayBuffer, online: ReplayBuffer, demo_fraction: float = 0.5) -> None:
        if not 0.0 <= demo_fraction <= 1.0:
            raise ValueError(f"demo_fraction must lie in [0, 1], got {demo_fraction}")
        mismatch = {
            name: (getattr(demo, name), getattr(online, name))
            for name in ("state_dim", "action_dim", "base_action_dim", "image_shapes", "device")
            if getattr(demo, name) != getattr(online, name)
        }
        if mismatch:
            raise ValueError(f"demo and online buffers differ (demo, online): {mismatch}")
        self.demo, self.online, self.demo_fraction = demo, online, float(demo_fraction)

    def sample(self, batch_size: int) -> Batch:
        have_demo, have_online = len(self.demo) > 0, len(self.online) > 0
        if not (have_demo or have_online):
            raise RuntimeError("MixedSampler.sample: both the demo and the online buffer are empty")
        if not have_online:
            demo_rows = batch_size
        elif not have_demo:
            demo_rows = 0
        else:
            demo_rows = round(batch_size * self.demo_fraction)
        if demo_rows == 0:
            return self.online.sample(batch_size)
        if demo_rows == batch_size:
            return self.demo.sample(batch_size)
        return Batch.cat([self.demo.sample(demo_rows), self.online.sample(batch_size - demo_rows)])
