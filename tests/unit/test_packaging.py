"""`pip install .` adds one import name, `triage`, and every layer folder lands inside it.

The wheel is built offline with the venv's setuptools (the dev extra) from a copy of the
checkout, then installed without dependencies into a fresh virtual environment, whose
site-packages is compared with an empty one's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIP = [sys.executable, "-m", "pip"]
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".triage", "build", "*.egg-info", "__pycache__", ".*_cache", "tests", "docs"
)


def _site_packages(env_dir: Path) -> Path:
    (found,) = env_dir.glob("lib/python*/site-packages")
    return found


def test_pip_install_adds_one_import_name(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheels.glob("triage-*.whl")

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    before = {p.name for p in _site_packages(env_dir).iterdir()}
    installed = subprocess.run(
        [*PIP, "--python", str(env_dir / "bin" / "python"), "install", "-q", "--no-deps",
         str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr

    site = _site_packages(env_dir)
    added = {p.name for p in site.iterdir()} - before
    assert {name for name in added if not name.endswith(".dist-info")} == {"triage"}
    assert len([name for name in added if name.endswith(".dist-info")]) == 1

    # each linked folder is a real package in the wheel, its data files too
    package = site / "triage"
    folders = sorted(link.name for link in (ROOT / "triage").iterdir() if link.is_symlink())
    assert sorted(p.name for p in package.iterdir() if (p / "__init__.py").is_file()) == folders
    assert not any(p.is_symlink() for p in package.rglob("*"))
    assert (package / "consumers" / "service.py").is_file()
    assert (package / "local" / "kafka_pom.xml").is_file()
    assert (package / "gateway" / "static" / "index.html").is_file()
    assert list((package / "schemas" / "json").glob("*.schema.json"))


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    """pyproject.toml lists the packages by hand: a new subpackage missing there would be left
    out of the wheel (and `pip install .` would break where it is imported)."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {"triage"}
    for link in (ROOT / "triage").iterdir():
        if link.is_symlink():
            for init in (ROOT / link.name).rglob("__init__.py"):
                found.add(".".join(("triage", *init.parent.relative_to(ROOT).parts)))
    assert listed == found
