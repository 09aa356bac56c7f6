"""Offscreen rendering backend selection. MuJoCo reads MUJOCO_GL when it is first imported, so
this runs from `sim/__init__.py` before anything imports mujoco: EGL by default (GPU or Mesa's
EGL), OSMesa as the software fallback, and a clear message naming the package when neither exists."""

from __future__ import annotations

import contextlib
import ctypes.util
import importlib.util
import os
import warnings

_BACKEND_LIBRARIES = {"egl": "EGL", "osmesa": "OSMesa"}
_INSTALL_HINT = {
    "egl": "libegl1 (Debian/Ubuntu: apt-get install libegl1; NVIDIA machines ship it with the driver)",
    "osmesa": "libosmesa6 (Debian/Ubuntu: apt-get install libosmesa6)",
}


class RenderingUnavailable(RuntimeError):
    """No offscreen OpenGL backend could be loaded."""


def _has_library(backend: str) -> bool:
    return ctypes.util.find_library(_BACKEND_LIBRARIES[backend]) is not None


def select_gl_backend() -> str | None:
    """Set MUJOCO_GL if the user did not: 'egl' when libEGL exists, else 'osmesa' with a warning.

    Returns the backend in force, or None when no offscreen library was found (state-only use
    still works; rendering then raises RenderingUnavailable)."""
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        return chosen
    if _has_library("egl"):
        os.environ["MUJOCO_GL"] = "egl"
        return "egl"
    if _has_library("osmesa"):
        warnings.warn(
            f"libEGL not found, rendering with OSMesa (slow, software). Install {_INSTALL_HINT['egl']}.",
            stacklevel=2,
        )
        os.environ["MUJOCO_GL"] = "osmesa"
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
        return "osmesa"
    return None


def missing_backend_message(error: BaseException | None = None) -> str:
    backend = os.environ.get("MUJOCO_GL", "egl")
    hint = _INSTALL_HINT.get(backend, _INSTALL_HINT["egl"])
    detail = f" ({type(error).__name__}: {error})" if error else ""
    return (
        f"offscreen rendering with MUJOCO_GL={backend} failed{detail}. Install {hint}, "
        f"or the software fallback {_INSTALL_HINT['osmesa']} and set MUJOCO_GL=osmesa."
    )


def preload_llvm_users() -> None:
    """Import triton (if installed) before the first GL context exists.

    Mesa's software rasteriser (llvmpipe) loads its own LLVM when a context is created; triton
    (pulled in by torch the first time an optimiser is built) bundles another. Loaded in that
    order the process segfaults; loaded triton-first both work (checked here with Mesa 22.3 and
    the triton that torch 2.15 installs). Costs ~0.2 s once, only for processes that render."""
    if importlib.util.find_spec("triton") is not None:
        with contextlib.suppress(Exception):
            import triton  # noqa: F401
