from triage.core.registry.view import RegistryView, not_voting, with_voter
from triage.core.runtime.clock import when
from triage.schemas.models import Announcement, ClassifierMode, ClassRecord, VotingSpan


def record(label, *spans):
    return ClassRecord(
        label=label, voting=[VotingSpan(version=v, since_ms=since) for v, since in spans]
    )


def entry(label, version="1", since=0, mode=ClassifierMode.VOTING):
    return Announcement(
        label=label,
        version=version,
        mode=mode,
        since_ms=since,
        heartbeat_ms=since,
        group_id="g",
        instance="i",
    )


def test_voting_set_follows_the_class_records_spans():
    view = RegistryView()
    view.apply("a", record("a", ("1", 10)))
    view.apply("b", record("b", ("1", 20)))
    view.apply("s@1", entry("s", since=0, mode=ClassifierMode.SHADOW))  # announced, no record
    assert view.voters_for(15).versions == {"a": "1"}
    assert view.voters_for(25).versions == {"a": "1", "b": "1"}
    assert view.voters_for(25).keys == {"a@1", "b@1"}


def test_the_last_span_started_by_the_text_names_the_version():
    view = RegistryView()
    view.apply("a", record("a", ("1", 10), ("2", 100), ("3", 200)))
    view.apply("b", record("b", ("1", 10)))
    assert [view.voters_for(t).versions["a"] for t in (10, 99, 100, 199, 200, 10**9)] == [
        "1",
        "1",
        "2",
        "2",
        "3",
        "3",
    ]


def test_spans_are_applied_in_time_order_whatever_the_list_order():
    view = RegistryView()
    view.apply("a", record("a", ("2", 100), ("1", 10)))
    assert view.voters_for(50).versions == {"a": "1"}
    assert view.voters_for(150).versions == {"a": "2"}


def test_text_older_than_every_class_expects_every_current_voter():
    view = RegistryView()
    view.apply("a", record("a", ("1", 10), ("2", 30)))
    view.apply("b", record("b", ("1", 20)))
    assert view.voters_for(5).versions == {"a": "2", "b": "1"}


def test_cached_answers_follow_registry_changes():
    view = RegistryView()
    view.apply("a", record("a", ("1", 10)))
    assert view.voters_for(50).versions == {"a": "1"}
    view.apply("a", with_voter(view.class_record("a"), "a", "2", 40))
    assert view.voters_for(50).versions == {"a": "2"}
    assert view.voters_for(20).versions == {"a": "1"}


def test_heartbeat_is_not_a_change_but_a_new_version_or_a_tombstone_is():
    view = RegistryView()
    view.apply("a", record("a", ("1", 10)))
    view.apply("a@1", entry("a", since=10))
    revision = view.revision
    view.apply("a@1", entry("a", since=10))
    view.apply("a", record("a", ("1", 10)))  # the same record again
    assert view.revision == revision
    view.apply("a@2", entry("a", "2", since=50))
    assert view.revision == revision + 1
    view.apply("a", None, at_ms=60)
    assert view.revision == revision + 2


def test_retired_class_is_known_but_not_live_and_votes_nowhere():
    view = RegistryView()
    view.apply("a", record("a", ("1", 10)))
    view.apply("b", record("b", ("1", 10)))
    view.apply("a@1", entry("a", since=10))
    view.apply("a@1", None, at_ms=100)
    view.apply("a", None, at_ms=100)
    assert view.knows("a") and not view.live("a") and view.retired("a", "1")
    assert view.voters_for(50).versions == {"b": "1"}  # also for texts from before
    assert not view.knows("zzz")


def test_a_still_running_process_does_not_bring_a_retired_class_back():
    view = RegistryView()
    view.apply("a", record("a", ("1", 10)))
    view.apply("a", None, at_ms=100)
    view.apply("a@1", entry("a", since=10))  # heartbeat of a process started before retire
    assert not view.live("a") and view.announcement("a", "1") is None
    view.apply("a@1", entry("a", since=150))  # a process started after retire adds it again
    assert view.live("a") and view.announcement("a", "1") is not None


def test_new_class_record_after_retirement_adds_the_class_again():
    view = RegistryView()
    view.apply("a", None, at_ms=100)
    view.apply("a", record("a", ("1", 200)))
    assert view.live("a") and view.voters_for(300).versions == {"a": "1"}


def test_retiring_one_version_drops_only_its_shadow_scores():
    view = RegistryView()
    view.apply("a", record("a", ("1", 10)))
    view.apply("a@2", entry("a", "2", since=20))
    assert view.shadows("a", "2")
    view.apply("a@2", None, at_ms=30)
    view.apply("a@2", entry("a", "2", since=20))  # its process still heartbeats
    assert not view.shadows("a", "2") and view.live("a")
    assert view.voters_for(50).versions == {"a": "1"}


def test_a_class_votes_once_its_span_started_and_its_voter_announced():
    view = RegistryView()
    view.apply("a", record("a", ("1", 10)))
    view.apply("a@1", entry("a"))
    view.apply("b", record("b", ("2", 50)))  # its voter, 2, not announced yet
    view.apply("b@1", entry("b"))
    view.apply("s@1", entry("s", mode=ClassifierMode.SHADOW))  # announced, no class record
    view.apply("r", record("r", ("1", 10)))
    view.apply("r@1", entry("r"))
    view.apply("r", None, at_ms=20)  # retired
    labels = {"a", "b", "s", "r", "nobody"}
    assert not_voting(view, labels, 5) == {
        "a": f"votes from {when(10)}",
        "b": f"votes from {when(50)}",
        "nobody": "not announced",
        "r": "retired",
        "s": "no voting span yet",
    }
    assert not_voting(view, labels, 60) == {
        "b": "voter 2 not announced",
        "nobody": "not announced",
        "r": "retired",
        "s": "no voting span yet",
    }
    view.apply("b@2", entry("b", version="2"))
    assert not_voting(view, {"a", "b"}, 60) == {}
