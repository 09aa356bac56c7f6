"""The actor's spool: records survive a restart byte for byte, acks remove them, the bound refuses
new records instead of blocking, leftovers of a killed write go, damaged records are set aside."""

import numpy as np

from actors.spool import Spool
from formats.wire import decode, encode


def record(seq: int):
    arrays = {"state": np.full(3, seq, np.float32), "front": np.full((8, 8, 3), seq % 256, np.uint8)}
    return encode("step", {"actor": "a", "session": "s", "seq": seq}, arrays)


def test_records_survive_a_restart_and_acks_remove_them(tmp_path):
    spool = Spool(tmp_path / "spool")
    for seq in range(5):
        assert spool.put(seq, record(seq))
    spool.ack(1)
    spool.ack(1)  # a duplicate ack (after a resend) is harmless
    restarted = Spool(tmp_path / "spool")  # a new process over the same directory
    assert len(restarted) == 4
    pending = list(restarted.pending())
    assert [seq for seq, _ in pending] == [0, 2, 3, 4]
    for seq, frames in pending:  # byte-identical: decodes to the same arrays
        message = decode(frames)
        assert message.header["seq"] == seq and message.arrays["state"][0] == seq
    assert restarted.ack_through(3) == 3
    assert [seq for seq, _ in restarted.pending()] == [4]


def test_a_full_spool_refuses_and_counts(tmp_path):
    one = len(b"".join(bytes(f) for f in record(0))) + 4 + 8 * 3  # frames + count + frame table
    spool = Spool(tmp_path, max_bytes=3 * one)
    assert [spool.put(seq, record(seq)) for seq in range(5)] == [True, True, True, False, False]
    assert spool.refused == 2 and spool.nbytes == 3 * one
    spool.ack(0)
    assert spool.put(5, record(5))  # room again after an ack


def test_a_killed_write_leaves_nothing_and_damage_is_reported(tmp_path):
    spool = Spool(tmp_path)
    spool.put(1, record(1))
    (tmp_path / ".000000000002.rec.tmp").write_bytes(b"half a rec")
    (tmp_path / "000000000003.rec").write_bytes(b"\x02\x00\x00\x00junk")
    reopened = Spool(tmp_path)
    assert not (tmp_path / ".000000000002.rec.tmp").exists()
    assert [seq for seq, _ in reopened.pending()] == [1]  # the damaged one is skipped, not fatal
    assert reopened.damaged == 1 and (tmp_path / "000000000003.rec.bad").exists()
    assert len(reopened) == 1


def test_the_transport_refuses_what_the_spool_budget_cannot_take_and_loses_nothing_it_took(tmp_path):
    """`send` answers False before queueing once the budget (all sessions' spools and the queue)
    is used up; on close every record it took is on disk for the next session, whose budget counts
    those leftovers."""
    from actors.config import TransportConfig
    from actors.transport import ActorTransport, record_bytes

    size = record_bytes(record(0))
    config = TransportConfig(learner=f"ipc://{tmp_path}/nobody", spool_bytes=3 * size + size // 2)
    transport = ActorTransport(config, "a", "s1", tmp_path / "spool", {})
    transport.start()  # nobody answers: nothing is ever acked
    assert [transport.send(seq, record(seq)) for seq in range(5)] == [True, True, True, False, False]
    transport.close(wait_s=0)
    assert transport.unspooled == 0 and transport.unacked == 3
    assert sorted(p.name for p in (tmp_path / "spool" / "s1").glob("*.rec")) == [
        f"{seq:012d}.rec" for seq in range(3)
    ]
    restarted = ActorTransport(config, "a", "s2", tmp_path / "spool", {})
    assert not restarted.send(0, record(0))  # the leftovers fill the budget until they are acked
