"""The import contracts in pyproject.toml ([tool.importlinter]) hold, and can fail: layers,
forbidden imports, and no import cycle between modules.

`lint-imports` is import-linter's command, from the dev extra, in the same venv as this test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CONFIG = PYPROJECT["tool"]["importlinter"]
CONTRACTS = CONFIG["contracts"]


def _lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} missing: install the dev extra (make install)"
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _contract_name(contract_type: str, forbidden: str | None = None) -> str:
    for contract in CONTRACTS:
        if contract["type"] == contract_type and (
            forbidden is None or forbidden in contract.get("forbidden_modules", [])
        ):
            return str(contract["name"])
    raise AssertionError(f"no {contract_type} contract (forbidding {forbidden}) in pyproject.toml")


def test_import_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, f"lint-imports failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize(
    ("module_file", "line", "contract", "import_shown"),
    [
        # a lower layer importing a higher one
        (
            "schemas/codec.py",
            "import triage.cli  # noqa",
            _contract_name("layers"),
            "triage.schemas.codec -> triage.cli",
        ),
        # a service importing kafka-python itself rather than through triage.core.kafka
        (
            "consumers/service.py",
            "import kafka  # noqa",
            _contract_name("forbidden", "kafka"),
            "triage.consumers.service -> kafka",
        ),
        # two modules importing each other (as cli/main.py and the command groups once did)
        (
            "cli/options.py",
            "import triage.cli.main  # noqa",
            _contract_name("acyclic_siblings"),
            "- .options -> .main",
        ),
    ],
    ids=["layers", "kafka", "cycle"],
)
def test_a_broken_contract_fails(
    tmp_path: Path, module_file: str, line: str, contract: str, import_shown: str
) -> None:
    # `triage/` links every layer folder (relative symlinks): copied as links, beside them
    layers = [link.name for link in (ROOT / "triage").iterdir() if link.is_symlink()]
    for folder in ["triage", "demo", *layers]:
        shutil.copytree(
            ROOT / folder,
            tmp_path / folder,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / module_file).open("a", encoding="utf-8") as f:
        f.write(f"\n{line}\n")

    # The copy first on the path, ahead of the repo the editable install points at.
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = _lint_imports(tmp_path, env)
    output = result.stdout + result.stderr

    assert result.returncode != 0, f"lint-imports passed a broken tree:\n{output}"
    assert f"{contract} BROKEN" in output, output
    assert import_shown in output, output


def _docs_tree() -> list[list[str]]:
    """The folders of each line of the layers tree in docs/architecture.md, top layer first."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = page.split("## Layers", 1)[1].split("```text\n", 1)[1].split("```\n", 1)[0]
    rows = []
    for line in block.splitlines():
        folders = []
        for word in line.split():
            if not word.endswith("/"):
                break
            folders.append(word.rstrip("/"))
        rows.append(folders)
    return rows


def _contract_layers() -> list[list[str]]:
    """The top-level layers contract, `triage.` taken off, the not-installed demo left out."""
    (layers,) = [c["layers"] for c in CONTRACTS if c["name"].startswith("Layers:")]
    names = [[name.strip() for name in layer.split("|")] for layer in layers]
    return [[name.removeprefix("triage.") for name in row if name != "demo"] for row in names]


def _source_folders() -> list[str]:
    return sorted(link.name for link in (ROOT / "triage").iterdir() if link.is_symlink())


def test_docs_tree_layers_and_folders_are_one_list() -> None:
    tree, layers = _docs_tree(), _contract_layers()
    assert [sorted(row) for row in tree] == [sorted(layer) for layer in layers]
    assert sorted(name for row in tree for name in row) == _source_folders()
    for name in _source_folders():
        link = ROOT / "triage" / name
        assert os.readlink(link) == f"../{name}", f"triage/{name} must link ../{name}"


def test_no_folder_holds_more_than_a_third_of_the_source() -> None:
    lines = {
        name: sum(
            len(path.read_text(encoding="utf-8").splitlines())
            for path in (ROOT / name).rglob("*.py")
        )
        for name in _source_folders()
    }
    total = sum(lines.values())
    assert total > 0
    too_big = {name: n for name, n in lines.items() if n > total / 3}
    assert not too_big, f"folders above a third of {total} source lines: {too_big}"
