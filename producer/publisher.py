"""Publishing texts to the `texts` topic and corrections to the `corrections` topic: the
Python API behind `triage publish` and `triage correct`.

Records are keyed by message id and sent with an idempotent producer (`acks=all`), so a
retried send never duplicates a text. `publish` returns the ids in input order once every
record is acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from triage.core.kafka import clients
from triage.producer.readers import new_id
from triage.producer.settings import ProducerSettings
from triage.schemas.codec import encode
from triage.schemas.models import CorrectionRecord, TextRecord


class Publisher:
    def __init__(self, settings: ProducerSettings | None = None, **overrides: Any) -> None:
        self.settings = settings or ProducerSettings()
        self.topics = self.settings.topics  # resolved once: names go with every record
        self._producer = clients.producer(
            self.settings, linger_ms=self.settings.linger_ms, **overrides
        )

    def publish(self, records: Iterable[TextRecord | str]) -> list[str]:
        """Send every record and wait for the broker's acknowledgements; returns the ids."""
        texts = (
            item if isinstance(item, TextRecord) else TextRecord(id=new_id(), text=item)
            for item in records
        )
        return self._send_all(self.topics.texts, texts)

    def correct(self, corrections: Iterable[CorrectionRecord]) -> list[str]:
        """Send corrections keyed by their message id (so each meets its result's partition)
        and wait for the acknowledgements; returns the ids."""
        return self._send_all(self.topics.corrections, corrections)

    def _send_all(self, topic: str, records: Iterable[TextRecord | CorrectionRecord]) -> list[str]:
        ids = []
        futures = []
        for record in records:
            futures.append(self._producer.send(topic, key=record.id.encode(), value=encode(record)))
            ids.append(record.id)
        self._producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises if the broker refused the record
        return ids

    def send(self, record: TextRecord) -> Any:
        """Send one record without waiting: a future whose `get(timeout)` raises if the broker
        refused it (a caller serving many requests waits for its own record only)."""
        return self.send_encoded(record.id.encode(), encode(record))

    def send_encoded(self, key: bytes, value: bytes) -> Any:
        """`send` of a record already encoded (its id as the key, `encode(record)`)."""
        return self._producer.send(self.topics.texts, key=key, value=value)

    def send_raw(self, key: bytes | None, value: bytes | None) -> None:
        """Send bytes as they are (for tests and tools that publish non-JSON texts)."""
        self._producer.send(self.topics.texts, key=key, value=value).get(timeout=30)

    def close(self) -> None:
        clients.close_producer(self._producer, timeout_s=10)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
