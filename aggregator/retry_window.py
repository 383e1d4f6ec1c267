"""Messages decided inside the retry window: 32 bytes each, in memory and in the changelog.

A complete decision can receive no more votes under exactly-once: every voter has answered, and
each answers a text once. What can still arrive for its id is a re-publish of the same text (a
client's retry: dropped, one result stays right), another text under the same id (a conflict:
one dead letter) or a lagging shadow score. So a finished message needs no join state, only
"id X was decided from fingerprint F": kept here for the retry window, as four numpy columns
(BLAKE2b-64 of the id, the fingerprint, the decision time, the text's source), not as a Python
object and a JSON changelog record per message. Measured before this index, at full speed with
20 co-located classes: 340 bytes of aggregator memory and one changelog record per text; a
restore replayed every id of the last hour.

Entries arrive in a small dict and are merged into the sorted columns in batches (when the dict
holds an eighth of the index, at most 65,536 entries). Each batch's
new entries are one `DecidedBlock` changelog record, tombstoned when the window has passed.
Pure logic: no Kafka here, time is passed in.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
from typing import NamedTuple

import numpy as np

from triage.schemas.models import DecidedBlock
from triage.schemas.source import SourceRef

BLOCK_PREFIX = b"\xffdone:"  # 0xff never starts a message id's UTF-8: no id key collides
UNKNOWN = 0  # fingerprint of a score that carried none (an older classifier): matches any
NO_SOURCE = np.iinfo(np.uint64).max
_MIN_MERGE = 4096
# The dict costs ~300 bytes an entry, the columns 32: measured at 1,000,000 texts with merges
# at a quarter of the index, the aggregator held 301 MB, 75 MB of it in the dict.
_MAX_RECENT = 65_536
_COLUMNS = ("ids", "fingerprints", "decided_ms", "sources")


class Entry(NamedTuple):
    fingerprint: int
    decided_ms: int
    source: int


def id_hash(message_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(message_id.encode(), digest_size=8).digest(), "little")


def fingerprint_int(fingerprint: str | None) -> int:
    return UNKNOWN if fingerprint is None else int(fingerprint, 16)


def source_int(source: str | None) -> int:
    """`<topic>:<partition>:<offset>` as `partition << 48 | offset`."""
    if source is None:
        return int(NO_SOURCE)
    _, p, o = SourceRef.parse(source)
    return p << 48 | o if p < 1 << 16 and o < 1 << 48 else int(NO_SOURCE)


def source_text(source: int) -> str:
    if source == NO_SOURCE:
        return "an unknown offset"
    return f"partition {source >> 48} offset {source & ((1 << 48) - 1)}"


class DoneIndex:
    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self._columns = [np.empty(0, np.uint64) for _ in _COLUMNS]  # sorted by id hash
        self._recent: dict[int, list[Entry]] = {}
        self._recent_count = 0
        self._new: list[tuple[int, int, int, int]] = []  # since the last block was taken
        self._restored: dict[bytes, DecidedBlock] = {}  # replayed blocks, merged at first use
        self.blocks: list[tuple[int, bytes]] = []  # (newest decision, key) in the log, sorted
        self._cutoff = 0

    def __len__(self) -> int:
        """Entries held (some may have left the window since the last merge)."""
        self._settle()
        return len(self._columns[0]) + self._recent_count

    def find(self, message_id: str) -> list[Entry]:
        """Every entry of this id (several when other texts were seen under it)."""
        self._settle()
        key = id_hash(message_id)
        found = list(self._recent.get(key, ()))
        ids = self._columns[0]
        i, n = int(ids.searchsorted(np.uint64(key))), len(ids)
        while i < n and ids.item(i) == key:  # .item: a Python int, no numpy scalar
            found.append(Entry(*(int(column.item(i)) for column in self._columns[1:])))
            i += 1
        # past the window but not merged away yet: the same answer as after a restart
        return [e for e in found if e.decided_ms >= self._cutoff]

    def add(self, message_id: str, fingerprint: int, decided_ms: int, source: int) -> None:
        self._settle()
        key = id_hash(message_id)
        self._recent.setdefault(key, []).append(Entry(fingerprint, decided_ms, source))
        self._recent_count += 1
        self._new.append((key, fingerprint, decided_ms, source))
        if len(self._recent) > min(max(_MIN_MERGE, len(self._columns[0]) // 8), _MAX_RECENT):
            self._merge()

    def expire(self, now_ms: int) -> list[bytes]:
        """Forget what left the window; the keys of changelog blocks to tombstone."""
        self._settle()
        self._cutoff = now_ms - self.window_ms
        gone = []
        while self.blocks and self.blocks[0][0] < self._cutoff:
            gone.append(self.blocks.pop(0)[1])
        return gone

    # -- changelog -----------------------------------------------------------------------
    def take_block(self) -> tuple[bytes, DecidedBlock] | None:
        """This batch's new entries as one changelog record (None when there are none)."""
        if not self._new:
            return None
        columns = [np.array(column, np.uint64) for column in zip(*self._new, strict=True)]
        self._new = []
        newest = int(columns[2].max())
        content = columns[0].tobytes() + columns[1].tobytes()
        digest = hashlib.blake2b(content, digest_size=8).hexdigest()
        key = BLOCK_PREFIX + f"{newest}:{digest}".encode()
        # in time order: a batch releasing old markers writes a block of old decisions
        bisect.insort(self.blocks, (newest, key))
        ids, fingerprints, decided, sources = (_b64(column) for column in columns)
        return key, DecidedBlock(
            ids=ids, fingerprints=fingerprints, decided_ms=decided, sources=sources
        )

    def restore_block(self, key: bytes, block: DecidedBlock | None) -> None:
        """Replay one block record (None: its tombstone), in changelog order."""
        if block is None:
            self._restored.pop(key, None)
        else:
            self._restored[key] = block

    def _settle(self) -> None:
        """Merge what a restore replayed, once it is over (a tombstone may follow a block):
        blocks hold entries in decision order, so the columns are sorted again once."""
        if not self._restored:
            return
        restored, self._restored = self._restored, {}
        parts: list[list[np.ndarray]] = [[c] for c in self._columns]
        for key, block in restored.items():
            columns = [_unb64(getattr(block, name)) for name in _COLUMNS]
            bisect.insort(self.blocks, (int(columns[2].max()), key))
            for part, column in zip(parts, columns, strict=True):
                part.append(column)
        merged = [np.concatenate(part) for part in parts]
        order = np.argsort(merged[0], kind="stable")
        self._columns = [column[order] for column in merged]
        self._merge()

    def _merge(self) -> None:
        """Fold the dict into the columns and drop what left the window, one column at a time:
        the peak is one column's copy (8 bytes an entry), not all four and a sort's indices."""
        cutoff = self._cutoff
        recent = sorted(
            (k, *e) for k, entries in self._recent.items() for e in entries if e[1] >= cutoff
        )
        self._recent, self._recent_count = {}, 0
        columns = self._columns
        if len(columns[2]) and int(columns[2].min()) < self._cutoff:
            kept = np.flatnonzero(columns[2] >= np.uint64(self._cutoff))
            columns = [c[kept] for c in columns]
            self._columns = columns
        if not recent:
            return
        new = [np.array(c, np.uint64) for c in zip(*recent, strict=True)]
        at = np.searchsorted(columns[0], new[0])  # new entries are sorted: one insert each
        for i, values in enumerate(new):
            self._columns[i] = np.insert(self._columns[i], at, values)


def _b64(column: np.ndarray) -> str:
    return base64.b64encode(column.astype("<u8").tobytes()).decode("ascii")


def _unb64(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<u8").astype(np.uint64)
