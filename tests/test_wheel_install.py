"""casegate installs as one package: its wheel puts `casegate/` into site-packages and no top-level
`config`, `store`, `rules` or `ingest`, so it lives beside another distribution that ships a top-level
`config` module, and both import. Built and installed for real, into a fresh venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the checkout's tracked files: a build in the checkout would leave build/lib
    behind, whose stale files (a module since moved) setuptools puts into the next wheel."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached"], capture_output=True,
                            timeout=30, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check", "-w", out, src)
    (found,) = out.glob("casegate-*.whl")
    return found


def test_the_wheel_holds_only_casegate(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        tops = {name.split("/", 1)[0] for name in z.namelist()}
        names = set(z.namelist())
    assert tops == {"casegate", *(t for t in tops if t.endswith((".dist-info", ".data")))}, tops
    for must in ("casegate/config/casegate.example.toml", "casegate/ingest/channels/web_form.html",
                 "casegate/store/migrations/script.py.mako", "casegate/ingest/app/cli.py"):
        assert must in names, f"{must} is not in the wheel"
    assert any(n.startswith("casegate/store/migrations/versions/0001") for n in names)


def test_installed_beside_another_top_level_config_both_import(wheel: Path, tmp_path: Path) -> None:
    other = tmp_path / "otherdist"
    (other / "config").mkdir(parents=True)
    (other / "config" / "__init__.py").write_text("WHO = 'otherdist'\n")
    (other / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "otherdist"\nversion = "1.0"\n[tool.setuptools]\npackages = ["config"]\n'
    )
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    py = venv / "bin" / "python"
    site = Path(_run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    # casegate's dependencies come from this test run's environment, read-only and without its own
    # casegate (a plain path line; the editable install's .pth hook there is not run)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "-q", "--no-deps",
           "--target", site)
    _run(*pip, wheel)
    _run(*pip, other)
    probe = (
        "import config, casegate.config, casegate.store.migrate, casegate.ingest.app.cli as cli\n"
        "assert config.WHO == 'otherdist', config.__file__\n"
        f"assert casegate.config.__file__.startswith({str(site)!r}), casegate.config.__file__\n"
        f"assert cli.__file__.startswith({str(site)!r}), cli.__file__\n"
        "s = casegate.config.load_settings(None)\n"
        "print(s.smtp.port)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    assert _run(py, "-I", "-c", probe, cwd=tmp_path, env=env).strip().isdigit()
