"""The shared formats every layer stands on: the wire format, the episode (demo) format, typed
configs <-> JSON <-> --flags, atomic file writes. Nothing here imports anything else of ours."""
