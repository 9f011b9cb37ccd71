"""The repository's shape: the four packages live here, the top level holds the design card's entries
and nothing else, and imports flow one way (`ingest` → `store` → `rules` → `config`)."""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "store", "rules", "ingest")
DESIGN_CARD = {"pyproject.toml", "README.md", "ingest", "store", "rules", "config", "deploy", "tests"}
ALLOWED_EXTRAS = {".ci", ".gitignore", "Makefile"}
PROJECT = {*PACKAGES, "tests"}


def _git(*args: str, root: Path = ROOT, ok_codes: tuple[int, ...] = (0,)) -> list[str]:
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False, timeout=30)
    assert out.returncode in ok_codes, f"git {' '.join(args)} failed: {out.stderr}"
    return [line for line in out.stdout.splitlines() if line]


def top_level_entries(root: Path) -> set[str]:
    """The top-level names of the files git tracks: what a clone has. Untracked files (a developer's
    `casegate.toml`, a data directory from `casegate run`) are not the repository's shape."""
    return {f.split("/", 1)[0] for f in _git("ls-files", "--cached", root=root)}


@pytest.mark.parametrize("name", PACKAGES)
def test_top_level_package_resolves_inside_this_project(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    path = Path(module.__file__).resolve()
    assert path.name == "__init__.py"
    assert path.parent == ROOT / name, f"{name} is imported from {path}, not from this project"


def test_top_level_holds_exactly_the_design_card_entries() -> None:
    top = top_level_entries(ROOT)
    missing = DESIGN_CARD - top
    assert not missing, f"design card entries missing from the repository: {sorted(missing)}"
    unexpected = top - DESIGN_CARD - ALLOWED_EXTRAS
    assert not unexpected, f"top-level entries not on the design card: {sorted(unexpected)}"


def test_untracked_files_at_the_top_level_are_not_the_repository_shape(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=30)
    (tmp_path / "README.md").write_text("x")
    subprocess.run(["git", "-C", str(tmp_path), "add", "README.md"], check=True, timeout=30)
    (tmp_path / "casegate.toml").write_text("[smtp]\n")  # as the README suggests
    (tmp_path / "casegate-data").mkdir()
    (tmp_path / "casegate-data" / "bus.db").write_text("")
    assert top_level_entries(tmp_path) == {"README.md"}


def _imported_packages(path: Path) -> set[str]:
    """Top-level names of the project packages a source file imports (absolute imports only;
    relative imports stay inside the file's own package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (  # importlib.import_module("pkg.mod") / __import__("pkg")
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value.split(".")[0])
    return names & PROJECT


def _imports_of_package(package: str) -> dict[str, set[str]]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources under {package}/"
    return {str(f.relative_to(ROOT)): _imported_packages(f) - {package} for f in files}


@pytest.mark.parametrize(
    ("package", "may_import"),
    [
        ("config", set()),
        ("rules", {"config"}),
        ("store", {"rules", "config"}),
        ("ingest", {"store", "rules", "config"}),
    ],
)
def test_imports_flow_one_way(package: str, may_import: set[str]) -> None:
    wrong = {f: sorted(names - may_import) for f, names in _imports_of_package(package).items() if names - may_import}
    assert not wrong, f"{package} imports what it must not: {wrong}"


def test_the_import_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    src = tmp_path / "probe.py"
    src.write_text(
        "import os\nimport store.models\nfrom ingest import cli\nfrom . import sibling\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rules.assignment import assign\n"
        "def f():\n    import config.settings\n    return importlib.import_module('tests.services')\n",
        encoding="utf-8",
    )
    assert _imported_packages(src) == {"store", "ingest", "rules", "config", "tests"}
