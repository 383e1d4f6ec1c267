"""Shipping a class at a time: `triage classifiers`, `promote` and `retire`.

`classifiers` lists what the registry says: each running version's role (voting since when,
scheduled to vote from when, shadow, retired), its process and heartbeat, and STALE when that
process missed three heartbeats or a voter has none. `promote` appends a voting span to the
class record: the version votes on texts published from `switch_delay_s` after the command,
the previous one stops at that same instant, so every text has exactly one voting version.
A promotion refused (not running, or the gate's reasons, passed in by the CLI) is done anyway
with `--force`, and the new span records who forced it, when, over which reasons.
`retire` tombstones a class record and its announcements (or one version's announcement).
Row building is pure. (`shadow-report`, which judges a shadow version against the results,
is an operator tool: `tools/shadow.py`.)
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import asdict, dataclass

from triage.core.records import Output
from triage.core.registry.settings import RegistrySettings
from triage.core.registry.store import (
    RegistryError,
    check_label,
    claim_votes,
    class_output,
    read_registry,
    stale,
    voter_records,
    write,
)
from triage.core.registry.view import RegistryView, latest, voter_at
from triage.core.runtime.clock import now_ms as current_ms
from triage.core.runtime.clock import when
from triage.schemas.codec import registry_key
from triage.schemas.models import Announcement, ForcedPromotion


@dataclass(frozen=True)
class Row:
    label: str
    version: str
    role: str  # voting | scheduled | shadow | retired
    voting_from_ms: int | None  # voting: since when; scheduled: from when
    voting_until_ms: int | None  # a voter replaced by a scheduled promote
    mode: str | None  # what its process was started as
    instance: str | None
    group_id: str | None
    since_ms: int | None
    heartbeat_ms: int | None
    stale: bool
    reads: str | None = None  # `text`, or `features:<encoder identity>`
    owner: dict[str, str | None] | None = None  # {"team", "contact"}, from the announcement


def classifier_rows(view: RegistryView, now_ms: int, heartbeat_s: float) -> list[Row]:
    """One row per announced version, and one per voter that no process announces."""
    announced = view.announcements()
    keys = set(announced)
    for label, record in view.classes().items():
        for span in (voter_at(record, now_ms), latest(record)):
            if span is not None:
                keys.add((label, span.version))
    return [
        _row(view, label, version, announced.get((label, version)), now_ms, heartbeat_s)
        for label, version in sorted(keys)
    ]


def _row(
    view: RegistryView,
    label: str,
    version: str,
    a: Announcement | None,
    now_ms: int,
    heartbeat_s: float,
) -> Row:
    role, start, until = "shadow", None, None
    record = view.class_record(label)
    if view.retired(label, version):
        role = "retired"
    elif record is not None:
        current, last = voter_at(record, now_ms), latest(record)
        if current is not None and current.version == version:
            role, start = "voting", current.since_ms
            until = last.since_ms if last.since_ms > now_ms and last.version != version else None
        elif last.version == version:
            role, start = "scheduled", last.since_ms
    return Row(
        label=label,
        version=version,
        role=role,
        voting_from_ms=start,
        voting_until_ms=until,
        mode=a.mode.value if a else None,
        instance=a.instance if a else None,
        group_id=a.group_id if a else None,
        since_ms=a.since_ms if a else None,
        heartbeat_ms=a.heartbeat_ms if a else None,
        stale=stale(a, now_ms, heartbeat_s) if a else role in ("voting", "scheduled"),
        reads=a.reads if a else None,
        owner=a.owner.model_dump() if a and a.owner else None,
    )


def row_json(row: Row, now_ms: int) -> dict:
    age = None if row.heartbeat_ms is None else round((now_ms - row.heartbeat_ms) / 1000, 1)
    return asdict(row) | {"heartbeat_age_s": age}


def format_rows(rows: list[Row], now_ms: int) -> list[str]:
    lines = [
        f"{'class':28} {'version':>7}  {'role':34} {'reads':24} {'owner':16} {'instance':16} "
        f"{'since':20}  heartbeat"
    ]
    for r in rows:
        role = {
            "voting": f"voting since {when(r.voting_from_ms)}",
            "scheduled": f"votes from {when(r.voting_from_ms)}",
        }.get(r.role, r.role)
        if r.voting_until_ms is not None:
            role = f"voting until {when(r.voting_until_ms)}"
        beat = "never" if r.heartbeat_ms is None else f"{(now_ms - r.heartbeat_ms) / 1000:.0f}s ago"
        lines.append(
            f"{r.label[:28]:28} {r.version:>7}  {role:34} {_input(r.reads):24} "
            f"{_owner(r.owner):16} {(r.instance or '-')[:16]:16} "
            f"{when(r.since_ms):20}  {beat}{'  STALE' if r.stale else ''}"
        )
    return lines


def _owner(owner: dict[str, str | None] | None) -> str:
    """The owning team (its contact is in --json): a column an operator reads for whom to ask."""
    return (owner or {}).get("team") or "-"


def _input(reads: str | None) -> str:
    """`text`, or the encoder identity a head reads (short enough for a column)."""
    return (reads or "-").removeprefix("features:")[:24]


class PromotionRefused(RegistryError):
    """A promotion refused for one or more reasons, each a line of the message."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("\n".join(reasons))
        self.reasons = reasons


def promote(
    settings: RegistrySettings,
    label: str,
    version: str,
    force: bool = False,
    gate: Callable[[], list[str]] = list,
) -> str:
    """Make `label@version` the voter from now + the switch delay. Refused (`PromotionRefused`)
    when it is not running, or for the reasons `gate()` gives (asked only of a running version,
    or when forced: judging the live impact reads three topics); with `force` done anyway, and
    who forced it over which reasons is kept in the class record's new span."""
    check_label(label)
    view = read_registry(settings)
    now = current_ms()
    record = view.class_record(label)
    if record is not None and latest(record).version == version:
        return f"{label}@{version} already votes (from {when(latest(record).since_ms)})"
    reasons = _not_promotable(view, label, version, now, settings.heartbeat_s)
    if force or not reasons:
        reasons += gate()
        # The gate's reading takes seconds (more than the switch delay on a busy machine): the
        # span must start `switch_delay_s` after it is written, not after the registry was read.
        view, now = read_registry(settings), current_ms()
        record = view.class_record(label)
    if reasons and not force:
        raise PromotionRefused(reasons)
    forced = ForcedPromotion(by=operator(settings), at_ms=now, reasons=reasons) if reasons else None
    delay_ms = int(settings.switch_delay_s * 1000)
    records = voter_records(view, {label: version}, now + delay_ms, {label: forced})
    write(settings, [class_output(settings, r, key) for key, r in records.items()])
    claim_votes(
        settings, records, lambda outputs: write(settings, outputs), settings.switch_delay_s
    )
    since = records[label].voting[-1].since_ms
    before = f"{label}@{latest(record).version} stops then" if record else "a new voting class"
    override = f"; FORCED over {len(reasons)} reason(s), recorded in the class record"
    override = override if forced else ""
    return (
        f"promoted {label}@{version}: votes on texts published from {when(since)} "
        f"({since} ms); {before}{override}"
    )


def operator(settings: RegistrySettings) -> str:
    """Who runs this command, as a forced promotion records it: `<user>@<instance>`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment nor the password database
        user = "unknown"
    return f"{user}@{settings.instance_id}"


def _not_promotable(
    view: RegistryView, label: str, version: str, now_ms: int, heartbeat_s: float
) -> list[str]:
    a = view.announcement(label, version)
    if a is None:
        return [
            f"{label}@{version} has not announced itself on the registry: start it first "
            f"(`triage classifier --label {label} --shadow`), or pass --force"
        ]
    if stale(a, now_ms, heartbeat_s):
        return [
            f"{label}@{version} sent no heartbeat for {(now_ms - a.heartbeat_ms) / 1000:.0f}s "
            "(stopped?): every text would miss its vote; start it again, or pass --force"
        ]
    return []


def retire(settings: RegistrySettings, label: str, version: str | None = None) -> str:
    check_label(label)
    view = read_registry(settings)
    versions = sorted(v for (name, v) in view.announcements() if name == label)
    record = view.class_record(label)
    if version is not None:
        return _retire_version(settings, view, label, version, versions)
    if record is None and not versions:
        raise RegistryError(f"no class {label} on the registry: nothing to retire")
    keys = [registry_key(label, v) for v in versions] + [label]
    write(settings, [Output(settings.topics.registry, key.encode(), None) for key in keys])
    named = ", ".join(f"{label}@{v}" for v in versions) or "none"
    return (
        f"retired {label}: no result names it from now on (announcements removed: {named}); "
        "stop its classifier processes"
    )


def _retire_version(
    settings: RegistrySettings, view: RegistryView, label: str, version: str, known: list[str]
) -> str:
    record = view.class_record(label)
    if record is not None:
        current = voter_at(record, current_ms())
        if version in {latest(record).version, current.version if current else None}:
            raise RegistryError(
                f"{label}@{version} votes: promote another version first, or retire the whole "
                f"class with `triage retire --label {label}`"
            )
    if version not in known:
        raise RegistryError(f"no {label}@{version} on the registry: nothing to retire")
    write(settings, [Output(settings.topics.registry, registry_key(label, version).encode(), None)])
    return f"retired {label}@{version}: no result names it from now on; stop its classifier process"
