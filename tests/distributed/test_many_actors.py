"""One learner server, eight actor transports at once (in this process, synthetic steps, so the test
is about the server): every actor's records are stored exactly once, per-actor stats add up, and
a newly connected actor gets the current weights at once."""

import time
import uuid

import numpy as np

from actors.config import TransportConfig
from actors.transport import ActorTransport
from formats.wire import RecordSpec, StepRecord, encode_step, pack_weights
from learner.configs import ServerConfig
from learner.ingest import Ingest, split_record_id
from learner.journal import Journal
from learner.replay import ReplayBuffer
from learner.server import LearnerServer

SPEC = RecordSpec(4, 2, {"front": (8, 8, 3)})
EPISODE = 7
# Upper bounds that only stop a hung test. The silence timeouts are as long so that a loaded machine
# never makes one side think the other gone: a reconnect resends unacked records (dropped as
# duplicates, but counted as received), and this test counts exactly.
HANG_S = 300.0


def record(actor: str, session: str, seq: int) -> StepRecord:
    t = seq % EPISODE
    return StepRecord(
        actor=actor, session=session, seq=seq, episode=seq // EPISODE, t=t,
        state=np.full(4, seq, np.float32), images={"front": np.full((8, 8, 3), seq % 256, np.uint8)},
        action=np.zeros(2, np.float32), reward=1.0, terminated=t == EPISODE - 1, truncated=False,
        success=t == EPISODE - 1, policy_version=0, final_state=np.zeros(4, np.float32),
        final_images={"front": np.zeros((8, 8, 3), np.uint8)},
    )  # fmt: skip


def wait_until(condition, timeout=HANG_S):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_eight_actors_at_once_each_stored_exactly_once(tmp_path):
    buffer = ReplayBuffer(8 * 80 + 16, 4, 2, SPEC.image_shapes)
    ingest = Ingest(SPEC, buffer, Journal(tmp_path / "journal"))
    server_config = ServerConfig(bind="tcp://127.0.0.1:*", heartbeat_s=0.1, actor_timeout_s=HANG_S)
    server = LearnerServer(server_config, ingest, {"agent": {}})
    endpoint = server.start()
    manifest, blob = pack_weights({"actor.w": np.arange(4, dtype=np.float32)})
    server.publish(3, manifest, blob)
    actors = []
    for k in range(8):
        name, session = f"robot-{k}", uuid.uuid4().hex[:8]
        config = TransportConfig(learner=endpoint, heartbeat_s=0.1, learner_timeout_s=HANG_S)
        transport = ActorTransport(config, name, session, tmp_path / "spool" / name, {"spec": SPEC.to_json()})
        transport.start()
        actors.append((name, session, transport))
    steps = 70  # ten episodes each
    for seq in range(steps):
        for name, session, transport in actors:
            transport.send(seq, encode_step(record(name, session, seq)))
    for _, _, transport in actors:
        wait_until(lambda t=transport: t.acked_through == steps - 1)
        version, tensors = transport.take_weights()  # pushed at once on connect
        assert version == 3 and np.array_equal(tensors["actor.w"], np.arange(4))
    assert server.live_actors() == sorted(name for name, _, _ in actors)
    for _, _, transport in actors:
        transport.close(wait_s=HANG_S, last_seq=steps - 1)  # acked already: returns at once
    server.stop()
    ingest.journal.close()

    assert ingest.steps_stored == 8 * steps
    stats = ingest.metrics(latest_version=3, elapsed_s=1.0, previous={})["actors"]
    for name, _, _ in actors:
        row = stats[name]
        assert (row["steps_received"], row["steps_stored"], row["rejected"], row["episodes"]) == (
            70,
            70,
            0,
            10,
        )
        assert row["success_rate"] == 1.0 and row["episode_return"] == EPISODE and row["policy_lag"] == 3
    streams = {s.index: s.actor for s in ingest.streams.values()}
    ids = [split_record_id(i) for i in buffer.record_id[: buffer.written].tolist() if i >= 0]
    per_actor = {}
    for index, seq in ids:
        per_actor.setdefault(streams[index], []).append(seq)
    assert {name: sorted(seqs) for name, seqs in per_actor.items()} == {
        name: list(range(steps)) for name, _, _ in actors
    }


def test_a_record_damaged_in_the_spool_is_skipped_and_counted_not_waited_for(tmp_path):
    """Seq 2 rots in the spool before the learner comes up: the actor sets it aside, tells the
    learner it is gone (an ack never covers a gap, so the learner would wait for it forever), and
    the rest is stored and acked; the lost record is counted on both sides."""
    endpoint = f"ipc://{tmp_path}/learner"
    config = TransportConfig(learner=endpoint, heartbeat_s=0.1, learner_timeout_s=HANG_S)
    transport = ActorTransport(config, "robot-0", "s", tmp_path / "spool", {"spec": SPEC.to_json()})
    transport.start()
    for seq in range(EPISODE):
        assert transport.send(seq, encode_step(record("robot-0", "s", seq)))
    wait_until(lambda: len(transport.spool) == EPISODE)  # spooled; nobody to send them to yet
    (transport.spool.directory / f"{2:012d}.rec").write_bytes(b"rotten")
    buffer = ReplayBuffer(64, 4, 2, SPEC.image_shapes)
    ingest = Ingest(SPEC, buffer, Journal(tmp_path / "journal"))
    server = LearnerServer(ServerConfig(bind=endpoint, heartbeat_s=0.1, actor_timeout_s=HANG_S), ingest, {})
    server.start()
    wait_until(lambda: transport.acked_through == EPISODE - 1)
    transport.close(wait_s=HANG_S, last_seq=EPISODE - 1)
    server.stop()
    ingest.journal.close()
    assert transport.spool.damaged == 1 and transport.spool.lost == {2} and len(transport.spool) == 0
    stats = ingest.actors["robot-0"]
    assert (stats.steps_stored, stats.steps_lost, ingest.steps_stored) == (EPISODE - 1, 1, EPISODE - 1)
    seqs = [split_record_id(i)[1] for i in buffer.record_id[: buffer.written].tolist() if i >= 0]
    assert sorted(seqs) == [0, 1, 3, 4, 5, 6]
