"""`SourceRef`: the one builder and reader of `<topic>:<partition>:<offset>` source references."""

from __future__ import annotations

import pytest

from triage.core.records import ConsumedRecord
from triage.schemas.models import FeatureRecord
from triage.schemas.source import SourceRef


def test_formats_as_the_contracts_expect_and_reads_back() -> None:
    ref = SourceRef("texts", 3, 42)
    assert ref.format() == "texts:3:42"
    assert SourceRef.parse(ref.format()) == ref
    big = SourceRef("texts", 2**31 - 1, 2**63 - 1)
    assert SourceRef.parse(big.format()) == big


def test_a_topic_holding_colons_reads_back_whole() -> None:
    ref = SourceRef("a:b::c", 0, 7)
    assert ref.format() == "a:b::c:0:7"
    assert SourceRef.parse(ref.format()) == ref


def test_of_a_consumed_record() -> None:
    record = ConsumedRecord("texts", 1, 99, 0, b"k", b"v")
    assert SourceRef.of(record) == SourceRef("texts", 1, 99)


@pytest.mark.parametrize("text", ["", "texts", "texts:1", "texts:x:1", "texts:1:"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        SourceRef.parse(text)


def test_the_contracts_pattern_accepts_what_it_writes() -> None:
    for ref in (SourceRef("texts", 5, 123), SourceRef("a:b", 0, 0)):
        record = FeatureRecord(
            id="m",
            text_timestamp_ms=0,
            encoder="minilm@" + "0" * 16,
            fingerprint="0" * 16,
            source=ref.format(),
        )
        assert SourceRef.parse(record.source) == ref
