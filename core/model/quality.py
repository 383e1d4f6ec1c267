"""Live quality of one class version: counting corrected results, and the figures from counts.

Pure logic, no Kafka, time passed in. `QualityBook` keeps, per (label, version), a
`QualityCounts`: a tally since the version's first result and one per time bucket of the
sliding window. A result is counted for drift (its score histogram) when it arrives; a result
joined with its correction updates the confusion counts and calibration bins of every class
that voted on it, each under the version that voted. The figures (precision, recall, support,
calibration error, population stability index) are computed from tallies added over buckets
and partitions, so several monitor instances' counts add up to the whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from triage.schemas.models import Announcement, QualityCounts, QualityTally

BINS = 10
NONE_LABEL = "-"  # a correction's "none of our classes", where a key needs a string
MAX_EXAMPLES = 3
# A bin with no rows on one side would make the PSI infinite: both sides get this floor.
PSI_FLOOR = 1e-4


def bin_of(score: float) -> int:
    """Equal-width bins over [0, 1]; a score of exactly 1 falls in the last bin."""
    return min(max(int(score * BINS), 0), BINS - 1)


@dataclass(frozen=True, slots=True)
class Truth:
    """A result joined with its correction: what is counted for every voting class."""

    id: str
    predicted: str | None  # the result's label (None: the pipeline abstained)
    actual: str | None  # the correction's label (None: none of our classes)
    scores: Mapping[str, float]
    versions: Mapping[str, str]


class _Tally:
    """A mutable QualityTally (pydantic contracts are frozen)."""

    def __init__(self, t: QualityTally | None = None) -> None:
        t = t or QualityTally()
        self.d = t.model_dump()

    def frozen(self) -> QualityTally:
        return QualityTally(**self.d)

    def result(self, score: float) -> None:
        self.d["results"] += 1
        self.d["hist"][bin_of(score)] += 1

    def truth(self, label: str, truth: Truth) -> None:
        predicted, actual = truth.predicted == label, truth.actual == label
        key = {(True, True): "tp", (True, False): "fp", (False, True): "fn"}.get(
            (predicted, actual), "tn"
        )
        self.d[key] += 1
        if actual and truth.predicted is None:
            self.d["abstained"] += 1
        score = truth.scores[label]
        b = bin_of(score)
        self.d["cal_n"][b] += 1
        self.d["cal_score"][b] += score
        self.d["cal_pos"][b] += int(actual)

    def confusion(self, truth: Truth) -> None:
        """A result wrongly routed to this class: under its true label, with an example id."""
        true = truth.actual or NONE_LABEL
        self.d["confusions"][true] = self.d["confusions"].get(true, 0) + 1
        examples = self.d["examples"].setdefault(true, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(truth.id)


class _Counts:
    """A mutable QualityCounts: what the book updates per record, frozen only when taken."""

    def __init__(self, c: QualityCounts) -> None:
        self.head = c.model_dump(include={"label", "version", "partition", "since_ms", "bucket_ms"})
        self.updated_ms = c.updated_ms
        self.total = _Tally(c.total)
        self.buckets = {start: _Tally(t) for start, t in c.buckets.items()}

    def frozen(self) -> QualityCounts:
        return QualityCounts(
            **self.head,
            updated_ms=self.updated_ms,
            total=self.total.frozen(),
            buckets={start: t.frozen() for start, t in self.buckets.items()},
        )


class QualityBook:
    """Every class version's counts of one partition, and which changed since last taken.

    Measured with 77 classes: updating frozen pydantic counts per result managed 425 results
    a second; the counts are therefore plain mutable objects, frozen once per batch."""

    def __init__(self, partition: int, window_ms: int, buckets: int = 12) -> None:
        self.partition = partition
        self.window_ms = window_ms
        self.bucket_ms = max(1, window_ms // buckets)
        self._counts: dict[tuple[str, str], _Counts] = {}
        self._changed: set[tuple[str, str]] = set()

    @property
    def counts(self) -> dict[tuple[str, str], QualityCounts]:
        """Every class version's counts as of now (frozen copies)."""
        return {key: c.frozen() for key, c in self._counts.items()}

    def restore(self, counts: QualityCounts) -> None:
        self._counts[(counts.label, counts.version)] = _Counts(counts)

    def add_result(self, scores: Mapping[str, float], versions: Mapping[str, str], now_ms: int):
        """Every result, corrected or not: each voting class's score, for drift."""
        for label, version in versions.items():
            if label in scores:
                self._update(label, version, now_ms, _Tally.result, scores[label])

    def add_truth(self, truth: Truth, now_ms: int) -> None:
        for label, version in truth.versions.items():
            if label in truth.scores:
                self._update(label, version, now_ms, _Tally.truth, label, truth)
        if truth.predicted is not None and truth.predicted != truth.actual:
            voted = truth.versions.get(truth.predicted)
            if voted is not None:  # confusions only since the version started: no bucket
                self._update(
                    truth.predicted, voted, now_ms, _Tally.confusion, truth, in_window=False
                )

    def _update(self, label, version, now_ms, change, *args, in_window: bool = True) -> None:
        key = (label, version)
        c = self._counts.get(key)
        if c is None:
            c = self._counts[key] = _Counts(
                QualityCounts(
                    label=label,
                    version=version,
                    partition=self.partition,
                    since_ms=now_ms,
                    updated_ms=now_ms,
                    bucket_ms=self.bucket_ms,
                )
            )
        change(c.total, *args)
        if in_window:
            start = now_ms - now_ms % self.bucket_ms
            bucket = c.buckets.get(start)
            if bucket is None:
                bucket = c.buckets[start] = _Tally()
            change(bucket, *args)
        c.updated_ms = now_ms
        self._changed.add(key)

    def expire(self, now_ms: int) -> None:
        """Drop buckets that ended before the window."""
        for key, c in self._counts.items():
            old = [b for b in c.buckets if b + self.bucket_ms <= now_ms - self.window_ms]
            for b in old:
                del c.buckets[b]
            if old:
                self._changed.add(key)

    def take_changes(self) -> list[QualityCounts]:
        changed, self._changed = self._changed, set()
        return [self._counts[key].frozen() for key in sorted(changed)]


# -- figures ------------------------------------------------------------------------------
def add(tallies: Iterable[QualityTally]) -> QualityTally:
    """The sum of tallies (over buckets, partitions or instances)."""
    out = _Tally()
    for t in tallies:
        for name, value in t.model_dump().items():
            if isinstance(value, list):
                out.d[name] = [a + b for a, b in zip(out.d[name], value, strict=True)]
            elif name == "examples":
                for true, ids in value.items():
                    have = out.d[name].setdefault(true, [])
                    fresh = [i for i in ids if i not in have]
                    have.extend(fresh[: MAX_EXAMPLES - len(have)])
            elif isinstance(value, dict):
                for k, v in value.items():
                    out.d[name][k] = out.d[name].get(k, 0) + v
            else:
                out.d[name] += value
    return out.frozen()


def in_window(counts: QualityCounts, now_ms: int, window_ms: int) -> QualityTally:
    """The tally of the buckets that overlap the last `window_ms`."""
    return add(t for b, t in counts.buckets.items() if b + counts.bucket_ms > now_ms - window_ms)


def precision(t: QualityTally) -> float | None:
    return t.tp / (t.tp + t.fp) if t.tp + t.fp else None


def recall(t: QualityTally) -> float | None:
    return t.tp / (t.tp + t.fn) if t.tp + t.fn else None


def support(t: QualityTally) -> int:
    """Corrected results whose true label is this class."""
    return t.tp + t.fn


def calibration_error(t: QualityTally) -> float | None:
    """Expected calibration error of the class's score on corrected results: row-weighted
    mean |observed positive rate − mean score| over the bins."""
    n = sum(t.cal_n)
    if not n:
        return None
    gaps = (
        count * abs(pos / count - score / count)
        for count, score, pos in zip(t.cal_n, t.cal_score, t.cal_pos, strict=True)
        if count
    )
    return sum(gaps) / n


def calibration_bins(t: QualityTally) -> list[dict[str, float | int]]:
    """Per non-empty tenth of the score on corrected results: rows, mean score, positive rate."""
    return [
        {
            "lower": b / BINS,
            "upper": (b + 1) / BINS,
            "count": n,
            "score": round(score / n, 4),
            "observed": round(pos / n, 4),
        }
        for b, (n, score, pos) in enumerate(zip(t.cal_n, t.cal_score, t.cal_pos, strict=True))
        if n
    ]


def psi(live: list[int], reference: list[float] | None) -> float | None:
    """Population stability index of the live score histogram against the training one
    (fractions per bin): Σ (live − ref) · ln(live / ref). Under 0.1 is usually read as
    stable, over 0.25 as a shift."""
    n = sum(live)
    if not n or not reference or len(reference) != len(live):
        return None
    total = sum(reference) or 1.0
    value = 0.0
    for count, ref in zip(live, reference, strict=True):
        a, e = max(count / n, PSI_FLOOR), max(ref / total, PSI_FLOOR)
        value += (a - e) * math.log(a / e)
    return value


def figures(t: QualityTally) -> dict[str, float | int | None]:
    """The live figures of a tally, JSON-ready."""
    return {
        "precision": rounded(precision(t)),
        "recall": rounded(recall(t)),
        "support": support(t),
        "corrected": t.tp + t.fp + t.fn + t.tn,
        "abstentions": t.abstained,
        "calibration_error": rounded(calibration_error(t)),
        "results": t.results,
    }


def rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


@dataclass(frozen=True, slots=True)
class Reference:
    """A class version's offline figures, from its manifest: what the live ones are held to."""

    precision: float
    recall: float
    f1: float
    score_histogram: list[float] | None = None
    owner: str | None = None  # the owning team, from the manifest


# The `owner` of a class version nobody claimed: a value, not an empty label (which Prometheus
# drops), so an alert still says so and Alertmanager can route it to a default receiver.
UNOWNED = "unowned"


def owner_team(announcement: Announcement | None, reference: Reference | None) -> str:
    """A class version's owning team: its announcement's (what the running process read from
    its manifest), else its manifest's (`--models`), else UNOWNED."""
    if announcement is not None and announcement.owner is not None:
        return announcement.owner.team
    if reference is not None and reference.owner:
        return reference.owner
    return UNOWNED
