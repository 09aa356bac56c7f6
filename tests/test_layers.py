"""DESIGN.md's import table, checked on the source: imports point down, never up. Every module
of every package is parsed (no import needed); a lazy import inside a function counts too, except
where the table allows it lazily (envs builds a sim twin only when asked)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORMATS = {"formats"}
# package -> packages of ours it may import (besides itself), as DESIGN.md's table says.
ALLOWED = {
    "realrl": {"benchmarks", "actors", "learner", "policies", "envs", "sim", "rewards", "robot"} | FORMATS,
    "benchmarks": {"actors", "learner", "policies", "envs", "sim", "rewards", "robot"} | FORMATS,
    "actors": {"envs", "policies"} | FORMATS,
    "learner": {"policies", "rewards"} | FORMATS,
    "policies": FORMATS,
    "envs": {"robot", "rewards"},
    "sim": {"robot"},
    "rewards": {"policies"} | FORMATS,
    "robot": FORMATS,
    "formats": set(),
}
LAZY_ALLOWED = {"envs": {"sim"}}  # only inside a function: a real-arm env never loads MuJoCo
OURS = set(ALLOWED)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level package, imported inside a function) for every import of ours in the file."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            found.extend((name.split(".")[0], nested) for name in names if name.split(".")[0] in OURS)
            visit(child, nested)

    visit(tree, False)
    return found


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for imported, lazy in imports(path):
            if imported == package or imported in ALLOWED[package]:
                continue
            if lazy and imported in LAZY_ALLOWED.get(package, set()):
                continue
            bad.append(f"{path.relative_to(ROOT)} imports {imported}{' (lazily)' if lazy else ''}")
    return bad


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down_the_layers(package):
    assert (ROOT / package / "__init__.py").exists()
    assert violations(package) == []


def test_the_checker_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom learner.loop import TrainingLoop\n\ndef f():\n    import sim\n")
    assert imports(module) == [("learner", False), ("sim", True)]
