"""The learner's ingest: interleaved actor sessions become whole episodes in the replay buffer (next
observations by index, checked against hand-built values), duplicates and gaps are handled, and a
journal replay after a simulated crash rebuilds exactly what was acked, each record once."""

import numpy as np
import pytest
import torch

from formats.wire import RecordSpec, StepRecord, decode, encode_step
from learner.ingest import Ingest, split_record_id
from learner.journal import Journal
from learner.replay import ReplayBuffer

SPEC = RecordSpec(state_dim=3, action_dim=2, image_shapes={"front": (4, 4, 3)})


def obs_value(actor: int, seq: int) -> float:
    """A value that names the record an observation came from, so pairing errors show."""
    return 1000.0 * actor + seq


def step(actor: int, session: str, seq: int, episode: int, t: int, done: bool = False):
    value = obs_value(actor, seq)
    record = StepRecord(
        actor=f"a{actor}",
        session=session,
        seq=seq,
        episode=episode,
        t=t,
        state=np.full(3, value, np.float32),
        images={"front": np.full((4, 4, 3), seq % 256, np.uint8)},
        action=np.array([value, -value], np.float32),
        reward=float(done),
        terminated=done,
        truncated=False,
        success=done,
        policy_version=seq // 2,
        action_source=("policy", "operator", "filter")[seq % 3],
        final_state=np.full(3, value + 0.5, np.float32),
        final_images={"front": np.full((4, 4, 3), 255, np.uint8)},
    )
    frames = [bytes(f) for f in encode_step(record)]
    return decode(frames), frames


def make_ingest(tmp_path, capacity=200):
    buffer = ReplayBuffer(capacity, 3, 2, {"front": (4, 4, 3)}, n_step=1, gamma=0.9)
    return Ingest(SPEC, buffer, Journal(tmp_path / "journal"))


def feed(ingest, messages):
    accepted = [ingest.offer(m.header["actor"], m, f) for m, f in messages]
    return accepted, ingest.commit()


def episode_messages(actor, session, first_seq, episode, length):
    return [step(actor, session, first_seq + t, episode, t, done=t == length - 1) for t in range(length)]


def test_interleaved_actors_become_whole_episodes_with_the_right_next_observations(tmp_path):
    ingest = make_ingest(tmp_path)
    a = episode_messages(0, "s0", 0, 0, 3)
    b = episode_messages(1, "s1", 0, 0, 2)
    accepted, acks = feed(ingest, [a[0], b[0], a[1], b[1], a[2]])  # interleaved on the wire
    assert accepted == [True] * 5
    assert sorted(acks) == [("a0", "s0", 2), ("a1", "s1", 1)]
    buffer = ingest.buffer
    # Actor 1's episode ended first, so it sits in slots 0..2 (2 steps + final obs), actor 0's in 3..6.
    assert buffer.written == 3 + 4 and len(buffer) == 5
    assert buffer.valid[:7].tolist() == [True, True, False, True, True, True, False]
    batch = buffer._gather(torch.tensor([0, 1, 3, 4, 5]))
    assert batch.state[:, 0].tolist() == [1000, 1001, 0, 1, 2]
    assert batch.next_state[:, 0].tolist() == [1001, 1001.5, 1, 2, 2.5]  # final obs after the last step
    assert batch.action[:, 0].tolist() == [1000, 1001, 0, 1, 2]
    assert batch.reward.tolist() == [0, 1, 0, 0, 1]
    assert batch.terminated.tolist() == [0, 1, 0, 0, 1]  # the success step ends its episode
    assert batch.discount.tolist() == pytest.approx([0.9] * 5)
    ids = buffer.record_id[:7].tolist()
    streams = {s.index: s.actor for s in ingest.streams.values()}
    decoded = [(streams[split_record_id(i)[0]], split_record_id(i)[1]) if i >= 0 else None for i in ids]
    assert decoded == [("a1", 0), ("a1", 1), None, ("a0", 0), ("a0", 1), ("a0", 2), None]
    stats = ingest.actors["a0"]
    assert (stats.steps_received, stats.steps_stored, stats.episodes, stats.finished) == (
        3,
        3,
        1,
        [(1.0, True)],
    )


def test_duplicates_are_dropped_and_reacked_and_a_gap_is_refused_until_resent(tmp_path):
    """An ack is cumulative, so it must never cover a record the learner lacks: after a lost seq 3,
    seqs 4 and 5 are refused (not journaled, the ack stays at 2) and a resend from 2 is asked for;
    the resent 3, 4, 5 complete the episode in one piece."""
    ingest = make_ingest(tmp_path)
    messages = episode_messages(0, "s", 0, 0, 6)
    feed(ingest, messages[:3])
    accepted, acks = feed(ingest, [messages[1], messages[2]])  # a resend after a reconnect
    assert accepted == [False, False] and acks == [("a0", "s", 2)]
    assert ingest.actors["a0"].duplicates_dropped == 2
    journaled = ingest.journal.end
    accepted, acks = feed(ingest, [messages[4], messages[5]])  # seq 3 lost on the way
    assert accepted == [False, False] and acks == [] and ingest.journal.end == journaled
    assert ingest.take_resends() == [("a0", "s", 2)] and ingest.take_resends() == []
    assert ingest.rejected_messages["out_of_order"] == 2 and ingest.steps_stored == 3
    accepted, acks = feed(ingest, messages[3:])  # the actor sends again from seq 3
    assert accepted == [True] * 3 and acks == [("a0", "s", 5)]
    buffer = ingest.buffer
    assert buffer.written == 7 and len(buffer) == 6  # one episode: 6 transitions + the final obs
    assert buffer.state[:7, 0].tolist() == [0, 1, 2, 3, 4, 5, 5.5]
    assert ingest.steps_stored == 6


def test_a_new_stream_may_start_past_seq_0(tmp_path):
    """Leftovers of a session whose first records an earlier run acked start where they start."""
    ingest = make_ingest(tmp_path)
    accepted, acks = feed(ingest, episode_messages(0, "old", 40, 0, 3))
    assert accepted == [True] * 3 and acks == [("a0", "old", 42)] and ingest.take_resends() == []


def test_a_record_from_another_actors_connection_or_with_bad_arrays_is_rejected(tmp_path):
    ingest = make_ingest(tmp_path)
    message, frames = step(0, "s", 0, 0, 0)
    assert not ingest.offer("a1", message, frames)  # claims to be a0 on a1's connection
    bad_spec = Ingest(RecordSpec(3, 2, {}), ingest.buffer, ingest.journal)
    assert not bad_spec.offer("a0", message, frames)  # an image the task does not have
    assert ingest.rejected_messages == {"bad_record": 1} and ingest.actors["a1"].rejected == 1
    assert bad_spec.rejected_messages == {"bad_record": 1}
    assert ingest.journal.end == 0  # nothing rejected reaches the journal


def test_journal_replay_after_a_crash_rebuilds_exactly_the_acked_records(tmp_path):
    """Checkpoint mid-episode, keep ingesting, 'crash', then restore checkpoint + journal: the same
    records land in the same slots, each once, and the per-actor counters are not doubled."""
    live = make_ingest(tmp_path)
    a = episode_messages(0, "s0", 0, 0, 4)
    b = episode_messages(1, "s1", 0, 0, 3) + episode_messages(1, "s1", 3, 1, 2)
    feed(live, [a[0], b[0], a[1], b[1], b[2]])  # b's first episode is stored, a's is open
    checkpoint = {
        "meta": live.buffer.meta_state_dict(),
        "slots": live.buffer.export_slots(0, live.buffer.written),
    }
    checkpoint["ingest"] = live.state_dict()
    live.journal.rotate()
    feed(live, [a[2], b[3], a[3], b[4]])  # acked after the checkpoint: only in the journal
    live.journal.close()

    restored = make_ingest(tmp_path)
    restored.buffer.import_slots(checkpoint["slots"])
    restored.buffer.load_meta_state_dict(checkpoint["meta"])
    restored.load_state_dict(checkpoint["ingest"])
    assert restored.replay_journal(checkpoint["ingest"]["journal_start"]) == 9 - 0  # from a's first record
    written = live.buffer.written
    assert restored.buffer.written == written
    for name in ("state", "action", "reward", "terminated", "valid", "record_id"):
        assert (
            getattr(restored.buffer, name)[:written].tolist() == getattr(live.buffer, name)[:written].tolist()
        )
    ids = [i for i in restored.buffer.record_id[:written].tolist() if i >= 0]
    assert len(ids) == len(set(ids)) == 9
    for actor in ("a0", "a1"):
        assert restored.actors[actor].steps_stored == live.actors[actor].steps_stored
        assert restored.actors[actor].duplicates_dropped == 0
    assert restored.steps_stored == live.steps_stored == 9
    # Stage counts (seq % 3: policy, operator, filter): a0 seqs 0-3, a1 seqs 0-4; each once.
    counts = {a: (s.operator_steps, s.filtered_steps) for a, s in live.actors.items()}
    assert counts == {"a0": (1, 1), "a1": (2, 1)}
    assert {a: (s.operator_steps, s.filtered_steps) for a, s in restored.actors.items()} == counts


def test_journal_cuts_a_torn_tail_and_prunes_whole_files(tmp_path):
    journal = Journal(tmp_path)
    offsets = [journal.append([b"header", bytes([i]) * 10]) for i in range(3)]
    journal.rotate()
    offsets.append(journal.append([b"later"]))
    journal.sync()
    journal.close()
    last = journal.files()[-1][1]
    with open(last, "ab") as f:
        f.write(b"\x10\x00\x00")  # a kill in the middle of the next record's header
    reopened = Journal(tmp_path)
    assert reopened.end == journal.end
    assert [(o, [bytes(f) for f in frames]) for o, frames in reopened.records(offsets[1])] == [
        (offsets[1], [b"header", b"\x01" * 10]),
        (offsets[2], [b"header", b"\x02" * 10]),
        (offsets[3], [b"later"]),
    ]
    reopened.prune(keep_from=offsets[3])
    assert [start for start, _ in reopened.files()] == [offsets[3]]
    with pytest.raises(ValueError, match="missing"):
        list(reopened.records(offsets[0]))


def test_a_checksummed_journal_finds_a_damaged_record_of_the_right_length(tmp_path):
    journal = Journal(tmp_path, checksums=True)
    journal.append([b"a" * 100])
    second = journal.append([b"b" * 100])
    journal.close()
    (_, path), *_ = journal.files()
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # a flipped byte inside the last record (a power cut's zeroed page, say)
    path.write_bytes(bytes(data))
    reopened = Journal(tmp_path, checksums=True)
    assert reopened.end == second  # the damaged record is cut; the first one stays
    assert [bytes(f) for _, frames in reopened.records(0) for f in frames] == [b"a" * 100]
    reopened.close()


def test_loopback_endpoints_are_recognised():
    from learner.server import is_loopback

    assert (
        is_loopback("tcp://127.0.0.1:5555")
        and is_loopback("tcp://localhost:1")
        and is_loopback("ipc:///tmp/x")
    )
    assert not is_loopback("tcp://*:5555") and not is_loopback("tcp://0.0.0.0:5555")
    assert not is_loopback("tcp://192.168.1.5:5555")
