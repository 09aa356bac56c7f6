"""realrl: real-robot reinforcement learning on the SERL pattern (actor on the robot PC, learner on
a GPU box, ZeroMQ between them) with MuJoCo sim twins of every task."""

__version__ = "0.1.0"
