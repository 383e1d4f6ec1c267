"""The gateway's core: publish a text under the `texts` contract and wait for its outcome.

A request's text is published keyed by its id, exactly as any Kafka client would, and the
request waits (asyncio, no thread held) for the result or dead letter the follower reads back.
The index of outcomes and its waiters belong to the event loop alone: the follower hands each
poll's outcomes over in one `call_soon_threadsafe`, so a request takes no lock and its answer
costs one hop per poll, not one per waiter.
An id whose outcome is already known is answered without publishing again, so a client's retry
gets the same result and `labels` keeps one result for the id; an id published again anyway
(the outcome not seen yet) is still decided once by the aggregator. When Kafka cannot be
reached the gateway says so at once (503) instead of holding the request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, TypeAlias

from pydantic_core import PydanticSerializationError

from triage.core.kafka import KafkaError
from triage.core.model.artifacts import available_labels
from triage.core.registry.store import describe
from triage.core.registry.view import not_voting
from triage.core.runtime.clock import now_ms
from triage.gateway.follower import Follower
from triage.gateway.results import ResultIndex, TextOutcome
from triage.gateway.settings import GatewaySettings
from triage.producer.publisher import Publisher
from triage.producer.readers import new_id
from triage.schemas.codec import encode, fingerprint
from triage.schemas.models import TextRecord

log = logging.getLogger(__name__)

# How long a publish may take before the request is answered 503: the producer's own limits
# (max_block_ms for metadata, request_timeout_ms for the acknowledgement) are set to match.
PUBLISH_TIMEOUT_S = 5.0
MISSING_NAMED = 5  # classes a not-ready answer names in its one line (`missing` holds all)

Waiter: TypeAlias = "asyncio.Future[TextOutcome]"


class Unavailable(Exception):
    """Kafka cannot be reached now; the message says what failed."""


class Unsendable(Exception):
    """A text that UTF-8 JSON cannot carry (a lone UTF-16 surrogate): nothing was published."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What became of one text: its outcome, or None when `wait` ran out first."""

    id: str
    outcome: TextOutcome | None
    conflict: bool = False  # the id's result is for another text


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.index: ResultIndex[Waiter] = ResultIndex(settings.results_kept)
        self.follower = Follower(settings, self._deliver)
        self.expected = set(settings.expected_classes)
        if settings.expected_models is not None:
            self.expected |= set(available_labels(settings.expected_models))
        self._loop: asyncio.AbstractEventLoop | None = None
        self.publisher: Publisher | None = None
        # Published here with no outcome seen yet (bounded like the index): not published
        # again by a retry, and `GET /v1/results/{id}` answers 202 for them.
        self.pending: OrderedDict[str, None] = OrderedDict()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Follow the results; they are applied in `loop`, the one serving the requests."""
        self._loop = loop
        self.follower.start()

    def stop(self) -> None:
        self.follower.stop()
        if self.publisher is not None:
            self.publisher.close()

    @property
    def available(self) -> str | None:
        """None when requests can be served, else why not."""
        return None if self.follower.ready.is_set() else self.follower.error

    @property
    def not_ready(self) -> str | None:
        """None when requests can be served and every expected class votes (`/readyz`), else
        why not: a text published before then would be decided without the missing ones."""
        if (why := self.available) is not None:
            return why
        if missing := self.missing():
            named = describe(dict(list(missing.items())[:MISSING_NAMED]))
            more = len(missing) - MISSING_NAMED
            rest = f" and {more} more" if more > 0 else ""
            return f"{len(missing)} expected class(es) do not vote yet: {named}{rest}"
        return None if self.voting() else "no classifier votes yet"

    def missing(self) -> dict[str, str]:
        """Expected classes that do not vote now, with why: those named by the settings (and
        their models folder) and every class with a class record in the registry."""
        with self.follower.lock:
            view = self.follower.view
            return not_voting(view, self.expected | view.classes().keys(), now_ms())

    def voting(self) -> dict[str, str]:
        """The classes that vote now, each with its voting version, as the registry says."""
        with self.follower.lock:
            return dict(self.follower.view.voters_for(now_ms()).versions)

    async def classify(self, texts: list[dict[str, Any]], wait_s: float) -> list[Answer]:
        """Publish every text not already decided and wait up to `wait_s` for all outcomes."""
        if (why := self.available) is not None:
            raise Unavailable(why)
        loop = asyncio.get_running_loop()
        records = [_record(t) for t in texts]
        waits: dict[str, Waiter] = {}
        known: dict[str, TextOutcome] = {}
        for record in records:
            waiter: Waiter = loop.create_future()
            outcome = self.index.wait(record.id, waiter)
            if outcome is None:
                waits[record.id] = waiter
            else:
                known[record.id] = outcome
        try:
            fresh = [r for r in records if r.id in waits and r.id not in self.pending]
            if fresh:
                await self._publish(fresh)
            if waits:
                await asyncio.wait(waits.values(), timeout=wait_s)
        finally:
            for message_id, waiter in waits.items():
                if not waiter.done():
                    self.index.forget(message_id, waiter)
        answers = []
        for record in records:
            outcome = known.get(record.id)
            if outcome is None and (w := waits.get(record.id)) and w.done():
                outcome = w.result()
            if outcome is None:
                self.pending[record.id] = None
                if len(self.pending) > self.settings.results_kept:
                    self.pending.popitem(last=False)
            else:
                self.pending.pop(record.id, None)
            answers.append(Answer(record.id, outcome, _conflicts(record, outcome)))
        return answers

    def lookup(self, message_id: str) -> TextOutcome | None:
        return self.index.get(message_id)

    def _deliver(self, outcomes: list[TextOutcome]) -> None:
        """From the follower's thread: one poll's outcomes, applied in the requests' loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.apply, outcomes)

    def apply(self, outcomes: list[TextOutcome]) -> None:
        """In the event loop: keep `outcomes` and answer the requests waiting for them."""
        for outcome in outcomes:
            for waiter in self.index.add(outcome):
                if not waiter.done():
                    waiter.set_result(outcome)

    async def _publish(self, records: list[TextRecord]) -> None:
        """Send `records` and wait for the broker's acknowledgements without holding a thread:
        the producer's callbacks resolve futures of this event loop. (Waiting in worker
        threads instead capped the gateway at its thread pool: 6 threads on 2 cores.)"""
        encoded = [_encoded(r) for r in records]  # all or none of a request is sent
        loop = asyncio.get_running_loop()
        acks = []
        try:
            if self.publisher is None:  # connecting may block: not on the event loop
                self.publisher = await asyncio.to_thread(
                    Publisher,
                    self.settings,
                    max_block_ms=int(PUBLISH_TIMEOUT_S * 1000),
                    request_timeout_ms=int(PUBLISH_TIMEOUT_S * 1000),
                )
            for key, value in encoded:
                ack: asyncio.Future[None] = loop.create_future()
                sent = self.publisher.send_encoded(key, value)
                sent.add_callback(lambda _meta, f=ack: loop.call_soon_threadsafe(_done, f, None))
                sent.add_errback(lambda exc, f=ack: loop.call_soon_threadsafe(_done, f, exc))
                acks.append(ack)
            await asyncio.wait_for(asyncio.gather(*acks), PUBLISH_TIMEOUT_S * 2)
        except (KafkaError, TimeoutError) as exc:
            raise Unavailable(f"cannot publish to Kafka: {exc!r}") from None


def _conflicts(record: TextRecord, outcome: TextOutcome | None) -> bool:
    """Whether the id's result or refusal was decided for another text than this request's."""
    if outcome is not None and outcome.refused is not None:
        refused = _refused_text(outcome.refused.original_value_b64)
        return refused is not None and refused != record.text
    result = outcome.result if outcome is not None else None
    if result is None or result.fingerprint is None:
        return False
    # "surrogatepass": a text UTF-8 cannot carry was never published, so it is another text
    return fingerprint(record.text.encode("utf-8", "surrogatepass")) != result.fingerprint


def _refused_text(value_b64: str) -> str | None:
    """The text of a refused `texts` record (JSON or plain), None when it has none to read."""
    try:
        raw = base64.b64decode(value_b64).decode()
        found = json.loads(raw) if raw.lstrip().startswith("{") else raw
    except ValueError:  # not base64, UTF-8 or JSON
        return None
    if isinstance(found, dict):
        found = found.get("text")
    return found if isinstance(found, str) else None


def _encoded(record: TextRecord) -> tuple[bytes, bytes]:
    """The record's key and value, as `Publisher.send` would encode them."""
    try:
        return record.id.encode(), encode(record)
    except (UnicodeEncodeError, PydanticSerializationError):
        raise Unsendable(
            f"id {record.id!r}: its text or metadata holds a lone UTF-16 surrogate"
            " (\\ud800-\\udfff alone), which UTF-8 cannot carry"
        ) from None


def _record(text: dict[str, Any]) -> TextRecord:
    # Not validated here on purpose: an empty or oversized text goes down the pipeline like any
    # other, is refused by the classifiers and answered with its dead-letter reason.
    return TextRecord.model_construct(
        schema_version=1,
        id=text.get("id") or new_id(),
        text=text["text"],
        metadata=text.get("metadata"),
    )


def _done(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
