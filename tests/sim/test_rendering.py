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


def test_rendering_then_torch_optimiser_does_not_crash():
    """Regression: llvmpipe's LLVM loaded before triton's segfaulted the process at the first
    torch optimiser. Needs a fresh process, since this one may have imported triton already."""
    import subprocess
    import sys

    code = (
        "from sim import SimRobot, SimRobotConfig\n"
        "r = SimRobot(SimRobotConfig(image_size=32)); r.reset(seed=0); f = r.get_frames()\n"
        "import torch\n"
        "torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))])\n"
        "print(f['front'].shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "(32, 32, 3)"
