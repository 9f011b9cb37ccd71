"""The repository's shape: the four folders live here and are installed as one package, `casegate`
(casegate.config, casegate.store, casegate.rules, casegate.ingest); the top level holds the design card's
entries and nothing else; imports flow one way (`ingest` → `store` → `rules` → `config`)."""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import tomllib
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
def test_each_folder_is_installed_as_a_part_of_casegate(name: str) -> None:
    module = importlib.import_module(f"casegate.{name}")
    assert module.__file__ is not None
    path = Path(module.__file__).resolve()
    assert path.name == "__init__.py"
    assert path.parent == ROOT / name, f"casegate.{name} is imported from {path}, not from this project"


def test_pyproject_lists_every_package_folder() -> None:
    """setuptools' package-dir mapping needs each sub-package named; one left out would be missing from
    the wheel while the editable install, which maps whole folders, still finds it."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert tool["package-dir"] == {f"casegate.{name}": name for name in PACKAGES}
    folders = {
        "casegate." + ".".join(init.parent.relative_to(ROOT).parts)
        for name in PACKAGES
        for init in (ROOT / name).rglob("__init__.py")
    }
    assert set(tool["packages"]) == folders


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


def _project_part(dotted: str) -> str:
    """`casegate.store.models` → `store`; a bare top-level name (`store.models`) is returned as it is, so
    the checks below see it (the project's code never imports its parts by their folder names)."""
    head, _, rest = dotted.partition(".")
    return rest.split(".")[0] if head == "casegate" else head


def _imported_packages(path: Path) -> set[str]:
    """Names of the project's parts a source file imports (absolute imports only; relative imports stay
    inside the file's own package). `casegate.X…` counts as X; a bare `X…` is returned as `bare:X`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(_name(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(_name(node.module))
        elif (  # importlib.import_module("pkg.mod") / __import__("pkg")
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(_name(node.args[0].value))
    return {n for n in names if n.removeprefix("bare:") in PROJECT}


def _name(dotted: str) -> str:
    part = _project_part(dotted)
    return part if dotted.startswith("casegate.") or part == "tests" else f"bare:{part}"


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
        "import os\nimport casegate.store.models\nfrom casegate.ingest import cli\nfrom . import sibling\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from casegate.rules.assignment import assign\n"
        "def f():\n    import config.settings\n    return importlib.import_module('tests.services')\n",
        encoding="utf-8",
    )
    assert _imported_packages(src) == {"store", "ingest", "rules", "bare:config", "tests"}


@pytest.mark.parametrize("where", [*PACKAGES, "tests"])
def test_nothing_imports_a_part_by_its_folder_name(where: str) -> None:
    """`import store` would load a second copy of casegate.store (two module objects, two sets of classes)
    in a checkout, and fail outright where casegate is installed from its wheel."""
    bare = {
        str(f.relative_to(ROOT)): sorted(n for n in _imported_packages(f) if n.startswith("bare:"))
        for f in sorted((ROOT / where).rglob("*.py"))
        if "data" not in f.relative_to(ROOT).parts
    }
    assert not {f: names for f, names in bare.items() if names}

