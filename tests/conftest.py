"""Shared test setup: offscreen rendering via EGL unless the caller chose a backend."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
