"""`triage quality`: the monitor's live figures per class version beside their offline ones.

Reads the compacted quality topic (one `QualityCounts` per class version and partition, written
by the monitor in its transactions), adds the partitions up, and puts each version's live
precision, recall, support, abstentions, calibration error and drift beside the figures its
manifest recorded at training (from `--models` folders, when given). The registry says which
version votes now: `per_class` carries that version's live figures, `versions` every version's.
Works from any machine that can read the topics; no scrape involved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from triage.core.kafka.reader import TopicReader
from triage.core.model.artifacts import available_labels, read_manifest
from triage.core.model.quality import (
    Reference,
    add,
    calibration_bins,
    figures,
    in_window,
    owner_team,
    psi,
    rounded,
)
from triage.core.registry.view import RegistryView, latest
from triage.core.settings import CommonSettings
from triage.schemas.models import QualityCounts

WORST = 10


def references(models_dirs: Iterable[Path]) -> dict[tuple[str, str], Reference]:
    """Each class version's offline figures, from the manifests in the folders."""
    found = {}
    for folder in models_dirs:
        for label in available_labels(folder):
            m = read_manifest(folder / label)
            x = m.metrics
            found[(m.label, m.version)] = Reference(
                x.get("precision", 0.0),
                x.get("recall", 0.0),
                x.get("f1", 0.0),
                m.score_histogram,
                m.owner.team if m.owner else None,
            )
    return found


def read_quality(settings: CommonSettings) -> dict[tuple[str, str], list[QualityCounts]]:
    """The latest summary of every class version and partition on the quality topic."""
    latest_by_key: dict[bytes, QualityCounts] = {}
    with TopicReader(settings, settings.topics.quality) as reader:
        for record in reader.read_to_end(stall_s=None):
            if record.key is not None and record.value:
                latest_by_key[record.key] = QualityCounts.model_validate_json(record.value)
    grouped: dict[tuple[str, str], list[QualityCounts]] = {}
    for counts in latest_by_key.values():
        grouped.setdefault((counts.label, counts.version), []).append(counts)
    return grouped


def quality_report(
    counts: Mapping[tuple[str, str], list[QualityCounts]],
    view: RegistryView,
    refs: Mapping[tuple[str, str], Reference],
    now_ms: int,
    window_ms: int,
    label: str | None = None,
) -> dict:
    """JSON-ready: `per_class` label → the voting version's live figures and every version's
    detail (live since the version started, over the window, offline); `worst_confusions`."""
    voting = {name: latest(record).version for name, record in view.classes().items()}
    per_class: dict[str, dict] = {}
    confusions: list[dict] = []
    for (name, version), parts in sorted(counts.items()):
        if label is not None and name != label:
            continue
        total = add(c.total for c in parts)
        ref = refs.get((name, version))
        detail = {
            "since_ms": min(c.since_ms for c in parts),
            "live": figures(total),
            "window": figures(add(in_window(c, now_ms, window_ms) for c in parts)),
            "psi": rounded(psi(total.hist, ref.score_histogram if ref else None)),
            "calibration": calibration_bins(total),
            "offline": None
            if ref is None
            else {"precision": ref.precision, "recall": ref.recall, "f1": ref.f1},
        }
        detail["owner"] = owner_team(view.announcement(name, version), ref)
        entry = per_class.setdefault(name, {"version": voting.get(name), "versions": {}})
        entry["versions"][version] = detail
        for true, n in total.confusions.items():
            examples = total.examples.get(true, [])
            confusions.append(
                {
                    "true": true,
                    "predicted": name,
                    "version": version,
                    "count": n,
                    "examples": examples,
                }
            )
    for entry in per_class.values():
        voter = entry["versions"].get(entry["version"]) or {"live": figures(add([]))}
        entry.update({k: voter["live"][k] for k in ("precision", "recall", "support")})
        # The voter's owner; a class whose voter has no counts yet: its newest version's.
        entry["owner"] = voter.get("owner") or list(entry["versions"].values())[-1]["owner"]
    confusions.sort(key=lambda c: (-c["count"], c["true"], c["predicted"]))
    return {"per_class": per_class, "worst_confusions": confusions[:WORST]}


def format_report(report: dict) -> str:
    header = (
        f"{'class':28} {'version':>7} {'vote':>4} {'prec':>6} {'off.p':>6} {'recall':>6} "
        f"{'off.r':>6} {'support':>7} {'abst':>5} {'ece':>6} {'psi':>6} {'win.p':>6} {'win.n':>6} "
        "owner"
    )
    lines = [header]
    for name, entry in sorted(report["per_class"].items()):
        for version, d in sorted(entry["versions"].items()):
            live, window, off = d["live"], d["window"], d["offline"] or {}
            lines.append(
                f"{name[:28]:28} {version:>7} {'*' if version == entry['version'] else '':>4} "
                f"{_f(live['precision'])} {_f(off.get('precision'))} {_f(live['recall'])} "
                f"{_f(off.get('recall'))} {live['support']:7d} {live['abstentions']:5d} "
                f"{_f(live['calibration_error'])} {_f(d['psi'])} {_f(window['precision'])} "
                f"{window['corrected']:6d} {d['owner']}"
            )
    if report["worst_confusions"]:
        lines.append("\nworst confusions (true → routed to, count, example ids):")
        for c in report["worst_confusions"]:
            lines.append(
                f"  {c['true']} → {c['predicted']}@{c['version']}  {c['count']}  "
                + ", ".join(c["examples"])
            )
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return f"{'-':>6}" if x is None else f"{x:6.3f}"
