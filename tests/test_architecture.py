"""The house rules of docs/ARCHITECTURE.md, read from the source: who may import whom."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EDGE = ROOT / "edge"
MAX_MODULE_LINES = 400


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-local imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
    return found


def area_files(area: str) -> list[Path]:
    return sorted((EDGE / area).rglob("*.py"))


def offenders(files: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in files:
        bad = sorted(
            m for m in imports_of(path) if any(m == f or m.startswith(f + ".") for f in forbidden)
        )
        if bad:
            out[str(path.relative_to(ROOT))] = bad
    return out


def test_the_device_package_never_imports_the_trainer_or_tensorflow() -> None:
    forbidden = ("tensorflow", "keras", "tf_keras", "pandas", "seqcast.train", "train")
    assert offenders(sorted(EDGE.rglob("*.py")), forbidden) == {}


def test_only_the_mqtt_area_imports_paho() -> None:
    outside = [p for p in EDGE.rglob("*.py") if (EDGE / "mqtt") not in p.parents]
    assert offenders(outside, ("paho",)) == {}


@pytest.mark.parametrize(
    ("area", "forbidden"),
    [
        ("config", ("seqcast.edge.mqtt", "seqcast.edge.path", "seqcast.edge.model",
                    "seqcast.edge.service", "seqcast.tools")),
        ("path", ("seqcast.edge.mqtt", "seqcast.edge.service", "seqcast.tools")),
        ("model", ("seqcast.edge.mqtt", "seqcast.edge.path", "seqcast.edge.service",
                   "seqcast.tools")),
        ("mqtt", ("seqcast.edge.path", "seqcast.edge.model", "seqcast.edge.service",
                  "seqcast.tools")),
        ("service", ("seqcast.tools",)),
    ],
)  # fmt: skip
def test_areas_depend_one_way(area: str, forbidden: tuple[str, ...]) -> None:
    assert offenders(area_files(area), forbidden) == {}


def test_no_tensorflow_backend_is_left() -> None:
    from seqcast.edge.model.backends import REGISTRY

    assert set(REGISTRY) == {"litert", "tflite_runtime"}
    assert not any("tensorflow" in module for module in REGISTRY.values())


def test_modules_stay_small() -> None:
    folders = ("edge", "train", "deploy", "tools", "bench", "tests")
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
        for folder in folders
        for p in (ROOT / folder).rglob("*.py")
    }
    assert {k: v for k, v in sizes.items() if v > MAX_MODULE_LINES} == {}


def test_nothing_points_outside_the_repository() -> None:
    hits = [
        str(p.relative_to(ROOT))
        for folder in ("edge", "train", "deploy", "tools")
        for p in (ROOT / folder).rglob("*.py")
        if "DESIGN.md" in p.read_text(encoding="utf-8")
    ]
    assert hits == []
