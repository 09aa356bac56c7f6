import pytest

from sim import rendering


def test_egl_is_preferred_and_user_choice_kept(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(rendering.ctypes.util, "find_library", lambda name: f"lib{name}.so")
    assert rendering.select_gl_backend() == "egl"
    monkeypatch.setenv("MUJOCO_GL", "glfw")
    assert rendering.select_gl_backend() == "glfw"


def test_osmesa_fallback_warns_with_the_package(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)  # restored after the test
    only_osmesa = {"OSMesa": "libOSMesa.so"}
    monkeypatch.setattr(rendering.ctypes.util, "find_library", only_osmesa.get)
    with pytest.warns(UserWarning, match="libegl1"):
        assert rendering.select_gl_backend() == "osmesa"


def test_no_backend_message_names_the_packages(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(rendering.ctypes.util, "find_library", lambda name: None)
    assert rendering.select_gl_backend() is None
    message = rendering.missing_backend_message(RuntimeError("no display"))
    assert "libegl1" in message and "libosmesa6" in message and "no display" in message
