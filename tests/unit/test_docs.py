"""The documentation is built and its shell blocks are either run by a test or marked examples.

The pages (README.md, SECURITY.md and docs/*.md, README and SECURITY included into the docs) are
built with Sphinx and MyST-Parser with warnings as errors: a link to a missing page, a
`page.md#anchor` with no such heading, a missing picture or include fails here.

The convention for a fenced block that shows commands:

- ```` ```console ```` is an example: every command starts with `$ ` (`> ` continues one), what
  follows unprefixed is its output. Nothing runs it.
- ```` ```bash ```` is a script a test runs: the line before it is
  `<!-- run by tests/<path>.py -->`, and that test file names the page.
- `sh`, `shell`, `zsh` and fences without a language are refused: say which of the two it is
  (or `text` for a picture or a listing).

An example is not run, but every `triage` command it shows must parse with triage's own argument
parser, so a renamed command or flag fails here instead of in a reader's shell.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from triage.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 300

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_RUN_BY = re.compile(r"^<!-- run by (?P<test>tests/\S+\.py) -->$")
REFUSED_LANGUAGES = {"sh", "shell", "zsh", "shell-session", "shellsession"}


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    lines: list[str]
    before: str  # the nearest non-blank line above the fence

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path, markdown: str | None = None) -> list[Block]:
    """The fenced code blocks of a Markdown page (or of `markdown` shown as that page)."""
    found: list[Block] = []
    if markdown is None:
        markdown = page.read_text(encoding="utf-8")
    text = markdown.splitlines()
    i = 0
    while i < len(text):
        opening = _FENCE.match(text[i])
        if not opening:
            i += 1
            continue
        fence = opening.group("fence")
        before = next((t.strip() for t in reversed(text[:i]) if t.strip()), "")
        body: list[str] = []
        j = i + 1
        while j < len(text) and not text[j].strip().startswith(fence):
            body.append(text[j])
            j += 1
        info = opening.group("info").strip()
        found.append(Block(page, i + 1, info.split()[0] if info else "", body, before))
        i = j + 1
    return found


def every_block() -> list[Block]:
    return [block for page in PAGES for block in blocks(page)]


def problems(block: Block) -> list[str]:
    """Why a block breaks the convention (nothing when it keeps it)."""
    language = block.language
    if not language:
        return [f"{block.where()}: a fence without a language: console, bash or text"]
    if language in REFUSED_LANGUAGES:
        return [f"{block.where()}: ```{language}: console (an example) or bash (run by a test)"]
    if language == "console":
        first = next((line for line in block.lines if line.strip()), "")
        if not first.startswith("$ "):
            return [f"{block.where()}: a console example starts with a `$ ` command"]
        return []
    if language == "bash":
        marker = _RUN_BY.match(block.before)
        if not marker:
            return [f"{block.where()}: ```bash is run by a test: `<!-- run by tests/... -->` above"]
        test = ROOT / marker.group("test")
        if not test.is_file():
            return [f"{block.where()}: {marker.group('test')} does not exist"]
        named = str(block.page.relative_to(ROOT))
        if named not in test.read_text(encoding="utf-8"):
            return [f"{block.where()}: {marker.group('test')} never names {named}"]
    return []


def test_every_shell_block_is_run_by_a_test_or_an_example():
    found = every_block()
    assert any(b.language == "bash" for b in found), "the walkthrough's ```bash block is gone"
    assert [p for block in found for p in problems(block)] == []


def commands(block: Block) -> list[str]:
    """The commands of a console example: `$ ` lines, each with its `> ` continuations, split at
    `;`, `&&` and `|`, a trailing comment and `&` dropped."""
    joined: list[str] = []
    for line in block.lines:
        if line.startswith("$ "):
            joined.append(line[2:])
        elif line.startswith("> ") and joined:
            joined[-1] = joined[-1].rstrip("\\ ") + " " + line[2:]
    parts = [re.split(r";|&&|\|", re.sub(r"\s+#.*$", "", command)) for command in joined]
    return [part.strip().rstrip("&").strip() for split in parts for part in split if part.strip()]


def triage_argv(command: str) -> list[str] | None:
    """The arguments of a `triage` (or `.venv/bin/triage`) command, redirections dropped."""
    words = shlex.split(command)
    if not words or words[0] not in ("triage", ".venv/bin/triage"):
        return None
    return [word for word in words[1:] if not word.startswith((">", "<", "2>"))]


def parse_error(argv: list[str]) -> str | None:
    """What triage's parser says about `argv`, or None when it parses."""
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit:
        return said.getvalue().strip().splitlines()[-1]
    return None


def test_every_triage_command_an_example_shows_parses():
    shown = [
        (block.where(), argv)
        for block in every_block()
        if block.language == "console"
        for command in commands(block)
        if (argv := triage_argv(command)) is not None
    ]
    assert len(shown) > 20, shown  # the tours of the README and getting started at least
    assert [(where, argv, error) for where, argv in shown if (error := parse_error(argv))] == []


def test_every_make_target_an_example_shows_exists():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    shown = {
        (block.where(), word)
        for block in every_block()
        if block.language == "console"
        for command in commands(block)
        if (words := shlex.split(command)) and words[0] == "make"
        for word in words[1:]
    }
    assert shown, "no example shows a make target"
    assert sorted((where, word) for where, word in shown if word not in targets) == []


def test_a_misspelt_flag_in_an_example_is_caught():
    markdown = "```console\n$ triage up --modles models \\\n> --mode colocated &  # all\nup\n```\n"
    (block,) = blocks(DOCS / "getting-started.md", markdown)
    (command,) = commands(block)
    argv = triage_argv(command)
    assert argv == ["up", "--modles", "models", "--mode", "colocated"]
    assert "--models" in (parse_error(argv) or "")  # the required flag it then lacks


@pytest.mark.parametrize(
    ("markdown", "complaint"),
    [
        ("```\nmake demo\n```\n", "without a language"),
        ("```sh\nmake demo\n```\n", "console (an example) or bash"),
        ("```console\nmake demo\n```\n", "starts with a `$ ` command"),
        ("```bash\nmake demo\n```\n", "run by a test"),
        ("<!-- run by tests/unit/nothing_here.py -->\n```bash\nmake demo\n```\n", "does not exist"),
        ("<!-- run by tests/unit/test_layers.py -->\n```bash\nmake demo\n```\n", "never names"),
    ],
)
def test_an_unmarked_shell_block_is_refused(markdown, complaint):
    (block,) = blocks(DOCS / "getting-started.md", markdown)
    (problem,) = problems(block)
    assert complaint in problem


def test_marked_blocks_pass():
    markdown = (
        "```console\n$ make demo\nlabelled\n```\n\n```text\nmake demo\n```\n\n"
        "<!-- run by tests/integration/test_walkthrough.py -->\n```bash\ntriage train\n```\n"
    )
    shown = blocks(DOCS / "shipping-a-class.md", markdown)
    assert [b.language for b in shown] == ["console", "text", "bash"]
    assert [p for block in shown for p in problems(block)] == []


def test_the_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; the rest belongs in docs/"


def sphinx(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """sphinx-build as `make docs` runs it: warnings as errors (-W), nitpicky (-n)."""
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html"]
        + ["-d", str(out / "doctrees"), str(source), str(out / "html")],
        capture_output=True,
        text=True,
    )


@pytest.mark.timeout(180)
def test_the_docs_build_with_warnings_as_errors(tmp_path):
    """A broken link, anchor, include or picture is an error."""
    build = sphinx(DOCS, tmp_path)
    assert build.returncode == 0, build.stdout + build.stderr
    assert (tmp_path / "html" / "shipping-a-class.html").is_file()


@pytest.mark.timeout(180)
def test_a_broken_anchor_fails_the_build(tmp_path):
    """The check above can fail: a copy of the pages with one link to a missing heading."""
    copy = tmp_path / "docs"
    shutil.copytree(DOCS, copy, ignore=shutil.ignore_patterns("_build"))
    for name in ("README.md", "SECURITY.md"):
        (tmp_path / name).write_text((ROOT / name).read_text(encoding="utf-8"), encoding="utf-8")
    page = copy / "reference.md"
    page.write_text(page.read_text(encoding="utf-8") + "\n[gone](operating.md#no-such-heading)\n")
    build = sphinx(copy, tmp_path / "out")
    assert build.returncode != 0
    assert "no-such-heading" in build.stderr
