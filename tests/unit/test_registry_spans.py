"""What `triage classifiers` shows and what `shadow-report` counts, from registry state alone."""

from triage.core.registry.lifecycle import classifier_rows, format_rows
from triage.core.registry.view import RegistryView, with_voter
from triage.schemas.models import Announcement, ClassifierMode, LabelRecord, ScoreRecord
from triage.tools.shadow import shadow_report

NOW = 1_000_000
HEARTBEAT_S = 10


def announce(view, label, version, heartbeat=NOW, mode=ClassifierMode.VOTING, since=0):
    view.apply(
        f"{label}@{version}",
        Announcement(
            label=label,
            version=version,
            mode=mode,
            since_ms=since,
            heartbeat_ms=heartbeat,
            group_id=f"g-{label}-{version}",
            instance="host",
        ),
    )


def roles(view):
    rows = classifier_rows(view, NOW, HEARTBEAT_S)
    return {(r.label, r.version): (r.role, r.stale) for r in rows}


def test_roles_follow_the_class_records():
    view = RegistryView()
    view.apply("a", with_voter(with_voter(None, "a", "1", 0), "a", "2", NOW + 5000))
    view.apply("b", with_voter(None, "b", "1", 0))
    announce(view, "a", "1")
    announce(view, "a", "2", mode=ClassifierMode.SHADOW)
    announce(view, "b", "1", heartbeat=NOW - 31_000)  # three heartbeats missed
    announce(view, "c", "1", mode=ClassifierMode.SHADOW)  # a new class, not voting yet
    assert roles(view) == {
        ("a", "1"): ("voting", False),
        ("a", "2"): ("scheduled", False),
        ("b", "1"): ("voting", True),
        ("c", "1"): ("shadow", False),
    }
    [a1] = [
        r for r in classifier_rows(view, NOW, HEARTBEAT_S) if r.version == "1" and r.label == "a"
    ]
    assert (a1.voting_from_ms, a1.voting_until_ms) == (0, NOW + 5000)
    lines = format_rows(classifier_rows(view, NOW, HEARTBEAT_S), NOW)
    assert len(lines) == 5 and "STALE" in lines[3] and "voting until" in lines[1]


def test_a_voter_without_a_process_is_listed_stale_and_retired_zombies_as_retired():
    view = RegistryView()
    view.apply("ghost", with_voter(None, "ghost", "7", 0))
    view.apply("gone", with_voter(None, "gone", "1", 0))
    view.apply("gone", None, at_ms=NOW - 100)
    announce(view, "gone", "1", since=0)  # still heartbeating after its retirement
    assert roles(view) == {("ghost", "7"): ("voting", True), ("gone", "1"): ("retired", False)}


def test_shadow_report_counts_what_the_version_would_have_changed():
    def score(i, p, version="2"):
        return ScoreRecord(
            id=f"m{i}", text_timestamp_ms=0, scores={"a": p}, versions={"a": version}
        )

    def result(i, label, scores):
        return LabelRecord(
            id=f"m{i}", label=label, probability=max(scores.values()), scores=scores,
            complete=True, missing=[], versions=dict.fromkeys(scores, "1"),
            text_timestamp_ms=0, decided_at_ms=0,
        )  # fmt: skip

    scores = [score(0, 0.9), score(1, 0.1), score(2, 0.8, version="1"), score(3, 0.7)]
    results = [
        result(0, "b", {"a": 0.2, "b": 0.6}),  # a@2 would win: changed, disagrees
        result(1, "b", {"a": 0.2, "b": 0.6}),  # unchanged, agrees (not a, p < 0.5)
        result(2, "a", {"a": 0.8, "b": 0.1}),  # only a@1 scored it: not judged
    ]
    report = shadow_report(scores, results, "a", "2", corrections={"m0": "b", "m9": "a"}).as_dict()
    assert report | {"per_class": None} == {
        "label": "a",
        "candidate_version": "2",
        "scored": 3,
        "texts": 2,
        "changed": 1,
        "predicted_positive": 1,
        "agrees_with_result": 1,
        "judged": 1,
        "changed_judged": 1,
        "flows": [
            {"from": "b", "to": "a", "changed": 1, "judged": 1, "right": 0, "wrong": 1,
             "was_right": 1}
        ],
        "per_class": None,
    }  # fmt: skip
    assert report["per_class"]["b"]["recall_before"] == 1.0
    assert report["per_class"]["b"]["recall_after"] == 0.0
