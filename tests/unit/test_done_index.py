import numpy as np

from triage.aggregator.retry_window import (
    BLOCK_PREFIX,
    DoneIndex,
    fingerprint_int,
    source_int,
    source_text,
)
from triage.schemas.codec import encode
from triage.schemas.models import DecidedBlock


def test_finds_what_was_added_before_and_after_a_merge():
    index = DoneIndex(window_ms=1000)
    for i in range(10_000):  # past the first merge: found in the sorted columns too
        index.add(f"id-{i}", i + 1, 100, source_int(f"texts:1:{i}"))
    assert [e.fingerprint for e in index.find("id-7")] == [8]
    assert index.find("id-9999")[0].source == 1 << 48 | 9999 and index.find("nope") == []
    index.add("id-7", 99, 200, source_int(None))  # another text under a known id
    assert sorted(e.fingerprint for e in index.find("id-7")) == [8, 99]
    assert len(index) == 10_001


def test_blocks_round_trip_and_tombstones_remove_them():
    index = DoneIndex(window_ms=1000)
    index.add("a", fingerprint_int("00000000000000ff"), 100, source_int("t:0:1"))
    key_a, block_a = index.take_block()
    index.add("b", 7, 300, source_int("t:0:2"))
    key_b, block_b = index.take_block()
    assert key_a.startswith(BLOCK_PREFIX) and index.take_block() is None
    restored = DoneIndex(window_ms=1000)
    for key, block in [(key_a, block_a), (key_b, block_b), (key_a, None)]:
        wire = None if block is None else DecidedBlock.model_validate_json(encode(block))
        restored.restore_block(key, wire)
    assert restored.find("a") == [] and restored.find("b")[0].fingerprint == 7
    assert restored.expire(1299) == [] and restored.expire(1301) == [key_b]


def test_the_window_drops_entries_at_the_next_merge():
    index = DoneIndex(window_ms=1000)
    index.add("old", 1, 0, 0)
    index.add("new", 2, 5000, 0)
    index.expire(5500)
    index.add("newer", 3, 5600, 0)
    index._merge()
    assert len(index) == 2 and index.find("old") == []


def test_sources_render_for_an_operator():
    assert source_text(source_int("texts:3:42")) == "partition 3 offset 42"
    assert source_text(int(np.iinfo(np.uint64).max)) == "an unknown offset"


def test_a_restored_index_finds_every_id_of_several_blocks():
    index = DoneIndex(window_ms=10_000)
    blocks = []
    for batch in range(3):  # entries in decision order, not sorted by their hash
        for i in range(50):
            index.add(f"b{batch}-{i}", batch * 100 + i + 1, 1000 + batch, 0)
        blocks.append(index.take_block())
    restored = DoneIndex(window_ms=10_000)
    for key, block in blocks:
        restored.restore_block(key, DecidedBlock.model_validate_json(encode(block)))
    restored.add("after", 7, 2000, 0)  # and what comes after the restore
    restored._merge()
    for batch in range(3):
        for i in range(50):
            assert [e.fingerprint for e in restored.find(f"b{batch}-{i}")] == [batch * 100 + i + 1]
    assert restored.find("after")[0].fingerprint == 7
    ids = restored._columns[0]
    assert bool(np.all(ids[:-1] <= ids[1:]))


def test_blocks_expire_in_time_order_whatever_order_they_were_written():
    index = DoneIndex(window_ms=1000)
    index.add("new", 1, 5000, 0)
    new_key, _ = index.take_block()
    index.add("old", 2, 100, 0)  # a released marker: an old decision written late
    old_key, _ = index.take_block()
    assert index.expire(1500) == [old_key]
    assert index.find("old") == [] and index.expire(6001) == [new_key]


def test_out_of_range_sources_are_unknown_not_an_overflow():
    assert source_text(source_int(f"texts:{1 << 20}:5")) == "an unknown offset"
