"""A batch's transaction commits only when every output was written (Kafka mechanics, stubbed
producer: what `commit_batch` asks of kafka-python, not a broker)."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaTimeoutError, NotEnoughReplicasError
from kafka.future import Future

from triage.core.kafka.transactions import commit_batch
from triage.core.records import Output


class _Result:
    def wait(self, timeout_ms=None) -> bool:
        return True


class _Manager:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def begin_commit(self) -> _Result:
        self.calls.append("commit")
        return _Result()

    def begin_abort(self) -> _Result:
        self.calls.append("abort")
        return _Result()


class _Sender:
    def wakeup(self) -> None:
        pass


class _Producer:
    """Records what was asked; the n-th send's future ends as `outcomes[n]`."""

    def __init__(self, outcomes: list[BaseException | None | str]) -> None:
        self.calls: list[str] = []
        self.outcomes = outcomes
        self._transaction_manager = _Manager(self.calls)
        self._sender = _Sender()

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def send(self, topic, key=None, value=None, partition=None) -> Future:
        outcome = self.outcomes[sum(c == "send" for c in self.calls)]
        self.calls.append("send")
        future = Future()
        if isinstance(outcome, BaseException):
            future.failure(outcome)
        elif outcome is None:
            future.success(None)
        return future  # "pending": never acknowledged

    def flush(self, timeout=None) -> None:
        self.calls.append("flush")


OUTPUTS = [Output("labels", b"a", b"{}"), Output("changelog", b"a", b"{}")]


def test_every_output_written_commits():
    producer = _Producer([None, None])
    commit_batch(producer, None, OUTPUTS, {})
    assert producer.calls == ["begin", "send", "send", "flush", "commit"]


def test_a_failed_output_aborts_instead_of_committing_the_rest():
    producer = _Producer([None, NotEnoughReplicasError("changelog")])
    with pytest.raises(NotEnoughReplicasError):
        commit_batch(producer, None, OUTPUTS, {})
    assert "commit" not in producer.calls and producer.calls[-1] == "abort"


def test_an_output_never_acknowledged_aborts():
    producer = _Producer([None, "pending"])
    with pytest.raises(KafkaTimeoutError, match="1 of 2 outputs"):
        commit_batch(producer, None, OUTPUTS, {})
    assert "commit" not in producer.calls and producer.calls[-1] == "abort"
