"""Input formats `triage publish` understands: CSV, JSON lines, or one text a line.

CSV needs a `text` column and may have `id` and other columns (kept as metadata). JSONL objects
need `text` and may have `id` and `metadata`. Ids are generated when absent.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from triage.core.errors import OperatorError
from triage.schemas.models import TextRecord

Format = Literal["csv", "jsonl", "lines"]


class InputError(OperatorError):
    """An input file that cannot be published; the message says where and why."""


def guess_format(name: str, first_line: str) -> Format:
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json") or first_line.lstrip().startswith("{"):
        return "jsonl"
    return "lines"


def new_id() -> str:
    return uuid.uuid4().hex


def read_records(content: str, fmt: Format, source: str = "input") -> Iterator[TextRecord]:
    if fmt == "csv":
        yield from _csv(content, source)
    elif fmt == "jsonl":
        yield from _jsonl(content, source)
    else:
        for line in content.splitlines():
            if line.strip():
                yield TextRecord(id=new_id(), text=line)


def _csv(content: str, source: str) -> Iterator[TextRecord]:
    reader = csv.DictReader(io.StringIO(content))
    if not reader.fieldnames or "text" not in reader.fieldnames:
        raise InputError(f"{source}: CSV needs a `text` column (has: {reader.fieldnames})")
    for line, row in enumerate(reader, start=2):
        text = row.pop("text") or ""
        if not text.strip():
            raise InputError(f"{source}:{line}: empty text")
        record_id = row.pop("id", None) or new_id()
        metadata = {k: v for k, v in row.items() if k} or None
        yield TextRecord(id=record_id, text=text, metadata=metadata)


def _jsonl(content: str, source: str) -> Iterator[TextRecord]:
    for line_no, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}:{line_no}: not JSON: {exc.msg}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise InputError(f"{source}:{line_no}: expected an object with a `text` string")
        yield TextRecord(
            id=str(obj.get("id") or new_id()), text=obj["text"], metadata=obj.get("metadata")
        )
