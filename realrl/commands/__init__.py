"""Implementations of the `realrl` verbs; `realrl.cli` only parses arguments and dispatches."""
