"""Reading committed results and dead letters, for `triage results`, the demo and tests.

The runtime's topic reader reads every partition from the beginning with `read_committed`:
only results of committed aggregator transactions are ever seen.
"""

from __future__ import annotations

from collections.abc import Iterator

from triage.core.kafka.reader import TopicReader
from triage.core.settings import CommonSettings
from triage.schemas.codec import Rejected, decode_label
from triage.schemas.models import DeadLetter, LabelRecord


def read_labels(settings: CommonSettings, follow: bool = False) -> Iterator[LabelRecord]:
    with TopicReader(settings, settings.topics.labels) as reader:
        records = reader.follow() if follow else reader.read_to_end(stall_s=None)
        for record in records:
            label = decode_label(record.value)
            if not isinstance(label, Rejected):
                yield label


def read_dead_letters(settings: CommonSettings) -> Iterator[DeadLetter]:
    with TopicReader(settings, settings.topics.dead_letters) as reader:
        for record in reader.read_to_end(stall_s=None):
            if record.value:
                yield DeadLetter.model_validate_json(record.value)
