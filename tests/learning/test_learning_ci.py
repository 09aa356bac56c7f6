"""The CI learning test: the whole training loop (in-process actor, replay, RLPD SAC, eval) must
actually learn, on a small and fast configuration with fixed seeds. Pendulum-v1 through
`--env gymnasium:` is the easy case: a random policy scores about -1200 per 200-step episode, a
swing-up policy better than -400. The sim-twin learning results are benchmarks (see README)."""

import json

from learner.configs import SACConfig, TrainConfig
from realrl.commands.train import train


def test_sac_learns_pendulum_swing_up(tmp_path):
    config = TrainConfig(
        env="gymnasium:Pendulum-v1",
        steps=4000,
        n_step=1,
        seed=0,
        batch_size=128,
        learning_starts=500,
        eval_every=1000,
        eval_episodes=3,
        log_every=500,
        checkpoint_every=4000,
        agent=SACConfig(
            hidden=(64, 64),
            critics=2,
            init_temperature=0.1,
            actor_lr=1e-3,
            critic_lr=1e-3,
            temperature_lr=1e-3,
        ),
    )
    summary = train(config, tmp_path / "run", progress=False)
    evals = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    returns = [row["eval_return"] for row in evals if "eval_return" in row]
    print("pendulum eval returns", returns)
    assert returns[0] < -700  # after 1000 steps (500 of them random): not swinging up yet
    assert summary["final_eval_return"] > -400
