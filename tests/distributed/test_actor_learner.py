"""Actor and learner as real processes over loopback ZeroMQ, with faults injected: the learner
SIGKILLed and resumed, an actor SIGKILLed and restarted, a fuzzer on the learner's socket, CURVE
keys. The acceptance bar everywhere: every step an actor recorded is in the learner's replay
buffer exactly once (compared by record id), and the learner keeps serving.

CI is a loaded 2-core machine, so each test waits for the events it asserts (a version advanced, a
step spooled, a row written) and asserts exact accounting; time limits only stop a hung test."""

import json
import os
import signal
import subprocess
import sys

import zmq.auth
from cluster import (
    HANG_S,
    CurveKeys,
    actor_row,
    assert_exactly_once,
    freeze,
    journal_past_checkpoint,
    latest_row,
    metrics,
    spooled_seqs,
    stored_steps,
    wait_for,
)

from learner.server import key_fingerprint

EPISODE_STEPS = 100  # PickCube's time limit: an actor's every 100 steps end at least one episode


def test_train_with_two_actor_processes_end_to_end(tmp_path):
    """`realrl train --actors 2`: both actors stream, act with the learner's weights, success is
    logged, and when the learner says training is over each actor stops by itself with its every
    step acked and stored once. The run ends after a number of env steps, however many updates a
    loaded machine made meanwhile, so versions are checked against what the learner recorded; that a
    newer version reaches a running actor is waited for in the learner test below."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "realrl.cli", "train", "--actors", "2", "--out", str(out), "--json"]
    command += ["--task", "PickCube", "--obs", "state", "--demo-episodes", "2", "--steps", "300"]
    command += ["--actor-hz", "40", "--learning-starts", "32", "--batch-size", "32"]
    command += ["--agent.hidden", "32", "32", "--weights-every", "5"]
    command += ["--log-every", "50", "--eval-every", "150", "--eval-episodes", "1"]
    # One torch thread per process, as for every process in these tests: learner and two actors share
    # two cores, and spinning OpenMP threads of an oversubscribed learner slow it down ~10x.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, timeout=HANG_S, env=env)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    summary = json.loads(result.stdout.decode().splitlines()[-1])
    finals = summary["actor_processes"]
    assert [f["actor_id"] for f in finals] == ["actor-0", "actor-1"]
    assert summary["env_steps"] == sum(f["steps_recorded"] for f in finals) >= 300
    found = stored_steps(out)
    for final in finals:
        stats = summary["actors"][final["actor_id"]]
        assert final["steps_recorded"] > 0
        assert final["steps_acked"] == final["steps_recorded"] and final["steps_spooled"] == 0
        assert stats["steps_stored"] == final["steps_recorded"]
        assert stats["steps_received"] == stats["steps_stored"] + stats["duplicates_dropped"]
        # It acted only with weights, and the version it ended with chose its newest stored step.
        assert 0 <= final["policy_version"] == stats["policy_version"] <= summary["updates"]
        assert stats["episodes"] >= final["steps_recorded"] // EPISODE_STEPS
        assert_exactly_once(found, final["actor_id"], final["session"], final["steps_recorded"])
    rows = [r for r in metrics(out) if "actors" in r]
    assert rows[-1]["final"]
    for name in ("actor-0", "actor-1"):
        history = [(r["updates"], r["actors"][name]) for r in rows if name in r["actors"]]
        versions = [stats["policy_version"] for _, stats in history]
        assert versions == sorted(versions)  # the newest version that produced a stored step
        assert all(stats["policy_version"] <= updates for updates, stats in history)
        episodes = 0
        for _, stats in history:  # success is logged in exactly the rows that saw episodes end
            assert ("success_rate" in stats) == (stats["episodes"] > episodes), stats
            episodes = stats["episodes"]
        assert episodes == summary["actors"][name]["episodes"]
    # 300 steps end at least one episode, so (by the loop above) some row logged a success rate.
    assert any("success_rate" in s for r in rows for s in r["actors"].values())
    evals = [r for r in metrics(out) if "eval_return" in r]
    assert evals and all(0.0 <= r["success_rate"] <= 1.0 for r in evals)


def test_learner_sigkill_and_resume_stores_every_step_exactly_once(processes, tmp_path):
    """Weights made by updates reach both actors. The learner is SIGKILLed while steps acked after
    its last checkpoint live only in the journal; `--resume` on the same endpoint rebuilds them, the
    same actor processes reconnect, resend what was not acked and go on; every step is stored once."""
    out, names = tmp_path / "run", ("a0", "a1")
    learner = processes.learner("learner", out)
    endpoint = processes.endpoint(learner)
    actors = [processes.actor(name, endpoint, "--control-hz", "60") for name in names]
    wait_for(lambda: all(actor_row(out, n).get("policy_version", -1) > 0 for n in names), HANG_S,
             "steps of both actors chosen by weights pushed after updates", processes)  # fmt: skip

    def frozen_with_journaled_steps() -> bool:
        freeze(learner)
        if journal_past_checkpoint(out):
            return True
        learner.send_signal(signal.SIGCONT)
        return False

    wait_for(frozen_with_journaled_steps, HANG_S, "a checkpoint and steps journaled after it", processes)
    learner.kill()  # SIGKILL: no checkpoint, no goodbye; acked steps after the checkpoint are only journaled
    learner.wait()
    # What a resumed learner restores (the same code as --resume), and the rows it keeps.
    restored = {actor: len(seqs) for (actor, _), seqs in stored_steps(out).items()}
    kept_rows = len(metrics(out))
    restarted = processes.learner("learner-resumed", out, "--resume", bind=endpoint)

    def new_steps_from_each_actor() -> bool:
        rows = [r for r in metrics(out)[kept_rows:] if "actors" in r]  # the resumed learner's rows
        return bool(rows) and all(
            rows[-1]["actors"].get(n, {}).get("steps_stored", 0) > restored.get(n, 0) for n in names
        )

    wait_for(new_steps_from_each_actor, HANG_S, "steps stored after the resume", processes)
    finals = [processes.stop(actor)[1] for actor in actors]  # the same actor processes, reconnected
    code, summary = processes.stop(restarted)
    assert code == 0, processes.log("learner-resumed")[-2000:]
    found = stored_steps(out)
    for final in finals:
        assert final["steps_acked"] == final["steps_recorded"] and final["steps_spooled"] == 0
        assert final["steps_recorded"] > restored.get(final["actor_id"], 0)
        assert_exactly_once(found, final["actor_id"], final["session"], final["steps_recorded"])
        assert summary["actors"][final["actor_id"]]["steps_stored"] == final["steps_recorded"]
    assert len(found) == 2
    # The resumed learner rebuilt what was acked after its checkpoint from the journal.
    assert "journaled step records" in processes.log("learner-resumed")


def test_actor_killed_mid_episode_and_restarted_is_a_new_session(processes, tmp_path):
    """The learner is frozen (SIGSTOP) until the actor has spooled steps the learner cannot have
    received, then the actor is SIGKILLed mid-episode. Its restart is a new session that is accepted
    at once and first resends the old session's spooled steps; nothing is lost or stored twice, and
    training goes on."""
    out, spool = tmp_path / "run", tmp_path / "spool" / "a0"
    learner = processes.learner("learner", out)
    endpoint = processes.endpoint(learner)
    first = processes.actor("a0", endpoint, "--control-hz", "60")
    wait_for(lambda: actor_row(out, "a0").get("steps_stored", 0) >= 120, HANG_S, "the first session's steps",
             processes)  # fmt: skip
    freeze(learner)
    # The actor spools each record before sending it: the frozen learner has none newer than this.
    newest_sent = max(spooled_seqs(spool), default=-1)
    wait_for(lambda: max(spooled_seqs(spool), default=-1) > newest_sent, HANG_S,
             "steps spooled while the learner is frozen", processes)  # fmt: skip
    first.kill()  # mid-episode: nothing is flushed, no goodbye
    first.wait()
    unacked = spooled_seqs(spool)  # whole records only (each is written under a temporary name)
    old_steps = unacked[-1] + 1  # the killed session's steps: everything before was acked
    updates_at_kill = latest_row(out)["updates"]  # the learner is still frozen
    learner.send_signal(signal.SIGCONT)
    second = processes.actor("a0", endpoint, "--control-hz", "60")  # same id and spool: a new session
    wait_for(lambda: actor_row(out, "a0").get("steps_stored", 0) >= old_steps + 50
             and latest_row(out)["updates"] > updates_at_kill, HANG_S,
             "the old session's resent steps, new steps and updates on them", processes)  # fmt: skip
    _, final = processes.stop(second)
    code, summary = processes.stop(learner)
    assert code == 0
    assert summary["updates"] > updates_at_kill  # training went on through the actor's death
    resent = f"spool: {len(unacked)} unacked records of 1 earlier session(s) will be resent"
    assert resent in processes.log("a0")
    found = stored_steps(out)
    sessions = {session for actor, session in found if actor == "a0"}
    assert len(sessions) == 2 and final["session"] in sessions
    assert final["steps_acked"] == final["steps_recorded"] and final["steps_spooled"] == 0
    assert_exactly_once(found, "a0", final["session"], final["steps_recorded"])
    # The killed session's steps, the spooled ones resent by the new process: an unbroken prefix, once each.
    (old,) = sessions - {final["session"]}
    assert_exactly_once(found, "a0", old, old_steps)
    assert summary["actors"]["a0"]["steps_stored"] == old_steps + final["steps_recorded"]


def test_fuzzing_the_learner_socket_while_a_real_actor_streams(processes, tmp_path):
    """Every bad message is counted once, under the reason it was built for; the learner goes on
    serving the real actor, whose every step is stored once."""
    from fuzz_messages import fuzz_learner

    out = tmp_path / "run"
    # The fuzzer's connection never heartbeats: a long actor timeout keeps it connected, so a slow
    # machine cannot turn its messages into 'no_hello' ones after a timeout.
    learner = processes.learner("learner", out, "--actor-timeout-s", str(HANG_S))
    endpoint = processes.endpoint(learner)
    actor = processes.actor("a0", endpoint, "--control-hz", "60")
    wait_for(lambda: actor_row(out, "a0").get("steps_stored", 0) >= 50, HANG_S, "the actor streaming",
             processes)  # fmt: skip
    sent = fuzz_learner(endpoint, seed=0, messages=600)  # returns once every message is delivered
    expected = {kind: count for kind, count in sent.items() if kind != "invalid" and count > 0}
    assert len(expected) == 11 and sum(expected.values()) == sent["invalid"]  # every kind of bad input
    wait_for(lambda: sum(latest_row(out).get("rejected_messages", {}).values()) >= sent["invalid"], HANG_S,
             "every bad message counted", processes)  # fmt: skip
    streamed = actor_row(out, "a0")["steps_stored"]
    wait_for(lambda: actor_row(out, "a0")["steps_stored"] >= streamed + 100, HANG_S, "steps after the fuzz",
             processes)  # fmt: skip
    assert learner.poll() is None
    _, final = processes.stop(actor)
    code, summary = processes.stop(learner)
    assert code == 0
    assert latest_row(out)["rejected_messages"] == expected  # the final row
    assert final["steps_acked"] == final["steps_recorded"]
    assert_exactly_once(stored_steps(out), "a0", final["session"], final["steps_recorded"])
    assert summary["actors"]["a0"]["rejected"] == 0
    assert "rejected a message" in processes.log("learner")


def test_curve_keys_let_the_allowed_actor_in_and_keep_a_stranger_out(processes, tmp_path):
    keys = CurveKeys(tmp_path, ["robot-1", "stranger"], allowed=["robot-1"])
    out = tmp_path / "run"
    learner = processes.learner("learner", out, *keys.learner_flags())
    endpoint = processes.endpoint(learner)
    allowed = processes.actor("robot-1", endpoint, *keys.actor_flags("robot-1"))
    stranger = processes.actor("stranger", endpoint, *keys.actor_flags("stranger"))
    plaintext = processes.actor("plain", endpoint)
    wait_for(lambda: actor_row(out, "robot-1").get("steps_stored", 0) >= 100, HANG_S,
             "the allowed actor streaming", processes)  # fmt: skip
    stranger_key, _ = zmq.auth.load_certificate(keys.keys / "stranger.key")
    fingerprint = key_fingerprint(stranger_key)
    refused = f"refused a CURVE handshake: key {stranger_key.decode()} (fingerprint {fingerprint})"
    wait_for(lambda: refused in processes.log("learner"), HANG_S, "the stranger's key logged", processes)
    finals = {
        name: processes.stop(p)[1]
        for name, p in (("robot-1", allowed), ("stranger", stranger), ("plain", plaintext))
    }
    code, summary = processes.stop(learner)
    assert code == 0
    assert finals["robot-1"]["steps_acked"] == finals["robot-1"]["steps_recorded"] >= 100
    assert summary["actors"]["robot-1"]["steps_stored"] == finals["robot-1"]["steps_recorded"]
    assert finals["robot-1"]["policy_version"] >= 0
    for name in ("stranger", "plain"):  # no welcome, so no weights and not a single step
        assert finals[name] == {**finals[name], "steps_recorded": 0, "steps_acked": 0, "policy_version": -1}
    assert set(summary["actors"]) == {"robot-1"}
    assert all(not name.startswith(("stranger", "plain")) for name in latest_row(out)["actors"])


def test_sigterm_stops_the_actor_with_its_final_json_line(processes, tmp_path):
    """With no learner at all the actor waits for one; SIGTERM still gives the final line at once."""
    actor = processes.actor("lonely", f"ipc://{tmp_path}/no-learner")  # nothing serves it, ever
    code, final = processes.stop(actor, signal.SIGTERM)  # once it logged that it waits for the learner
    assert code == 0
    assert final["actor_id"] == "lonely" and final["steps_recorded"] == 0 and final["steps_spooled"] == 0
