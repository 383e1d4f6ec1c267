"""A service with `overlap_chunk`: a large polled batch is processed a chunk at a time, one
transaction a chunk, each committing while the next chunk is processed (the run loop's own
step, with a stubbed producer and consumer: what it asks of kafka-python, not a broker)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future

from triage.core.records import ConsumedRecord, Output, batch_of, chunks_of, next_offsets
from triage.core.runtime.app import Application, Service
from triage.core.settings import CommonSettings


def records(partition: int, n: int, start: int = 0) -> list[ConsumedRecord]:
    return [
        ConsumedRecord("in", partition, start + i, 0, b"k", f"{partition}:{start + i}".encode())
        for i in range(n)
    ]


def test_chunks_keep_each_partitions_order_and_end_at_the_batchs_offsets():
    batch = batch_of(records(0, 5) + records(1, 3, start=40) + records(2, 1, start=7))
    chunks = chunks_of(batch, 4)
    assert [sum(map(len, c.values())) for c in chunks] == [4, 4, 1]
    for tp, rs in batch.items():
        assert [r for c in chunks for r in c.get(tp, [])] == list(rs)
    committed: dict = {}
    for chunk in chunks:
        committed |= next_offsets(chunk)
    assert committed == next_offsets(batch)
    assert chunks_of(batch, 100) == [{tp: list(rs) for tp, rs in batch.items()}]
    assert chunks_of({}, 4) == []


class _Done:
    def wait(self, timeout_ms=None) -> bool:
        return True


class _Producer:
    """Transactions as lists of what each held; `fail_commit` makes that commit time out.
    A commit waits (up to 5 s) for the next chunk's `process` to start: it returns at once only
    when the two overlap."""

    def __init__(self, processing: list[threading.Event], fail_commit: int | None = None):
        self.transactions: list[dict] = []
        self.processing = processing
        self.fail_commit = fail_commit
        self.overlapped: list[bool] = []
        self._transaction_manager = self
        self._sender = self

    def wakeup(self) -> None:
        pass

    def begin_transaction(self) -> None:
        self.transactions.append({"sent": [], "offsets": None, "state": "open"})

    def send(self, topic, key=None, value=None, partition=None) -> Future:
        self.transactions[-1]["sent"].append(value)
        return Future().success(None)

    def flush(self, timeout=None) -> None:
        pass

    def send_offsets_to_transaction(self, offsets, group_metadata) -> _Done:
        self.transactions[-1]["offsets"] = {tp.partition: o.offset for tp, o in offsets.items()}
        return _Done()

    def begin_commit(self) -> _Done:
        n = len(self.transactions)
        if n < len(self.processing):  # the next chunk: is it being processed meanwhile?
            self.overlapped.append(self.processing[n].wait(timeout=5))
        if n - 1 == self.fail_commit:
            raise KafkaTimeoutError("committing took longer than 20s")
        self.transactions[-1]["state"] = "committed"
        return _Done()

    def begin_abort(self) -> _Done:
        self.transactions[-1]["state"] = "aborted"
        return _Done()


class _Consumer:
    def group_metadata(self):
        return None


class _Encoder(Service):
    name = "encoder"
    overlap_chunk = 4

    def __init__(self, chunks: int) -> None:
        self.processing = [threading.Event() for _ in range(chunks)]
        self.calls: list[str] = []

    def process(self, batch, now_ms):
        self.processing[sum(c.startswith("process") for c in self.calls)].set()
        values = [r.value for rs in batch.values() for r in rs]
        self.calls.append(f"process {len(values)}")
        return [Output("out", None, v) for v in values]

    def committed(self) -> None:
        self.calls.append("committed")


def step(service: _Encoder, producer: _Producer, batch) -> None:
    app = Application(service, CommonSettings())
    app._committer = ThreadPoolExecutor(1)
    try:
        app._step(batch, producer, _Consumer())
    finally:
        app._committer.shutdown()


def test_each_chunk_commits_while_the_next_is_processed():
    batch = batch_of(records(0, 6) + records(1, 4))
    service = _Encoder(chunks=3)
    producer = _Producer(service.processing)
    step(service, producer, batch)
    assert [t["state"] for t in producer.transactions] == ["committed"] * 3
    assert [b" ".join(t["sent"]) for t in producer.transactions] == [
        b"0:0 0:1 0:2 0:3", b"0:4 0:5 1:0 1:1", b"1:2 1:3"
    ]  # fmt: skip
    assert [t["offsets"] for t in producer.transactions] == [{0: 4}, {0: 6, 1: 2}, {1: 4}]
    assert producer.overlapped == [True, True]
    assert service.calls == [
        "process 4", "process 4", "committed", "process 2", "committed", "committed"
    ]  # fmt: skip


def test_a_failed_chunk_commit_ends_the_step_and_nothing_after_it_commits():
    batch = batch_of(records(0, 12))
    service = _Encoder(chunks=3)
    producer = _Producer(service.processing, fail_commit=0)
    with pytest.raises(KafkaTimeoutError):
        step(service, producer, batch)
    assert [t["state"] for t in producer.transactions] == ["aborted"]
    assert service.calls == ["process 4", "process 4"]  # the second chunk's never committed


def test_a_batch_within_one_chunk_is_one_transaction_as_without_overlap():
    service = _Encoder(chunks=1)
    producer = _Producer(service.processing)
    step(service, producer, batch_of(records(0, 4)))
    assert [(len(t["sent"]), t["offsets"]) for t in producer.transactions] == [(4, {0: 4})]
    assert service.calls == ["process 4", "committed"]


def test_a_service_with_a_changelog_cannot_overlap():
    service = _Encoder(chunks=1)
    service.changelog = "changes"
    with pytest.raises(ValueError, match="changelog"):
        Application(service, CommonSettings())
