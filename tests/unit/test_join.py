import pytest

from triage.aggregator.join import Conflict, JoinTable, RefusedByClassifier
from triage.core.records import ConsumedRecord
from triage.core.registry.view import RegistryView, with_voter
from triage.schemas.codec import Reason, encode
from triage.schemas.models import (
    Announcement,
    ClassifierMode,
    DecidedBlock,
    JoinState,
    LabelRecord,
    Refusal,
    ScoreRecord,
)

T0 = 1_000_000


def vote(view, label, since=0, version="1"):
    """Make `version` the voter of `label` from `since` (a class record, as promote writes)."""
    view.apply(label, with_voter(view.class_record(label), label, version, since))


def announce(view, label, version="2", since=0):
    view.apply(
        f"{label}@{version}",
        Announcement(
            label=label,
            version=version,
            mode=ClassifierMode.SHADOW,
            since_ms=since,
            heartbeat_ms=since,
            group_id="g",
            instance="i",
        ),
    )


def score(message_id, ts=T0, version="1", **probabilities):
    return ScoreRecord(
        id=message_id,
        text_timestamp_ms=ts,
        scores=probabilities,
        versions=dict.fromkeys(probabilities, version),
    )


@pytest.fixture
def view():
    v = RegistryView()
    vote(v, "a")
    vote(v, "b")
    return v


@pytest.fixture
def table(view):
    return JoinTable(view, timeout_ms=1000, horizon_ms=60_000)


def test_decides_once_every_expected_classifier_answered(table):
    assert table.add(score("m", a=0.2), T0) == []
    [result] = table.add(score("m", b=0.7), T0 + 5)
    assert isinstance(result, LabelRecord)
    assert (result.label, result.probability, result.complete) == ("b", 0.7, True)
    assert result.scores == {"a": 0.2, "b": 0.7} and result.missing == []
    assert not table.pending


def test_one_record_with_several_classes_completes_at_once(table):
    [result] = table.add(score("m", a=0.6, b=0.1), T0)
    assert result.label == "a" and result.versions == {"a": "1", "b": "1"}


def test_duplicate_score_changes_nothing(table):
    table.add(score("m", a=0.2), T0)
    table.add(score("m", a=0.99), T0)  # redelivered with another value: first one wins
    [result] = table.add(score("m", b=0.3), T0)
    assert result.scores["a"] == 0.2 and table.counts["duplicate_scores"] == 1


def test_late_score_after_decision_is_ignored(table):
    table.add(score("m", a=0.2, b=0.3), T0)
    assert table.add(score("m", a=0.9), T0 + 10) == []
    assert table.counts["late_scores"] == 1


def test_timeout_emits_partial_result_naming_missing(table):
    table.add(score("m", a=0.8), T0)
    assert table.expire(T0 + 999) == []
    [result] = table.expire(T0 + 1000)
    assert (result.complete, result.missing, result.label) == (False, ["b"], "a")
    assert table.counts["join_timeouts"] == 1
    assert table.add(score("m", b=0.9), T0 + 2000) == []  # the straggler cannot decide again


def test_classifier_that_started_after_the_text_is_not_waited_for(view, table):
    vote(view, "c", since=T0 + 1)
    [result] = table.add(score("m", a=0.1, b=0.2), T0)
    assert result.complete and "c" not in result.missing


def test_late_joiner_score_is_kept_apart_from_the_vote(view, table):
    vote(view, "c", since=T0 + 1)
    table.add(score("m", c=0.99), T0)
    [result] = table.add(score("m", a=0.1, b=0.2), T0)
    assert result.label == "b" and result.shadow_scores == {"c@1": 0.99}


def test_a_version_that_is_not_the_voter_is_a_shadow_whatever_it_claims(view, table):
    announce(view, "a", version="2")
    assert table.add(score("m", version="2", a=0.99), T0) == []  # a@2 cannot complete it
    [result] = table.add(score("m", a=0.1, b=0.2), T0)
    assert result.label == "b" and result.scores == {"a": 0.1, "b": 0.2}
    assert result.versions == {"a": "1", "b": "1"} and result.shadow_scores == {"a@2": 0.99}


def test_promote_switches_the_vote_at_its_timestamp(view, table):
    announce(view, "a", version="2")
    vote(view, "a", since=T0 + 100, version="2")
    [old] = table.add(score("old", ts=T0 + 99, a=0.1, b=0.2), T0 + 200)
    assert old.versions == {"a": "1", "b": "1"}
    assert table.add(score("new", ts=T0 + 100, a=0.1, b=0.2), T0 + 200) == []  # needs a@2
    [new] = table.add(score("new", ts=T0 + 100, version="2", a=0.9), T0 + 200)
    assert new.versions == {"a": "2", "b": "1"} and new.scores == {"a": 0.9, "b": 0.2}
    assert new.shadow_scores == {"a@1": 0.1} and new.label == "a"


def test_pending_join_is_routed_by_the_registry_at_decision_time(view, table):
    table.add(score("m", ts=T0 + 500, version="2", a=0.9), T0)
    table.add(score("m", ts=T0 + 500, b=0.2), T0)
    assert table.pending  # a@2 is not the voter (yet): waiting for a@1
    vote(view, "a", since=T0 + 100, version="2")  # read late: the span was written in time
    [result] = table.recheck(T0 + 1)
    assert result.complete and result.versions == {"a": "2", "b": "1"}


def test_retired_version_is_no_longer_a_shadow(view, table):
    announce(view, "a", version="2", since=T0 - 10)
    table.add(score("m", version="2", a=0.9), T0)
    view.apply("a@2", None, at_ms=T0)
    announce(view, "a", version="2", since=T0 - 10)  # a heartbeat of the still-running process
    [result] = table.add(score("m", a=0.1, b=0.2), T0)
    assert result.shadow_scores == {}


def test_retiring_a_class_completes_joins_waiting_for_it(view, table):
    table.add(score("m", a=0.4), T0)
    view.apply("b", None, at_ms=T0)
    [result] = table.recheck(T0 + 1)
    assert result.complete and result.label == "a" and "b" not in result.scores


def test_retired_class_is_named_nowhere_even_when_it_had_scored(view, table):
    vote(view, "c")
    table.add(score("m", a=0.4, c=0.9), T0)
    table.add(score("m", version="2", c=0.8), T0)
    view.apply("c", None, at_ms=T0)
    [result] = table.add(score("m", b=0.1), T0)
    named = {*result.scores, *result.missing, *result.versions, *result.shadow_scores}
    assert named == {"a", "b"} and result.label == "a"
    assert table.add(score("n", c=0.9), T0) == []  # its zombie's scores are dropped
    assert table.counts["retired_scores"] == 1


def test_threshold_abstains(view):
    table = JoinTable(view, timeout_ms=1000, horizon_ms=60_000, threshold=0.5)
    [result] = table.add(score("m", a=0.3, b=0.4), T0)
    assert result.label is None and result.probability == 0.4


def test_refusal_becomes_one_dead_letter(table):
    refusal = Refusal(
        reason="empty_text",
        detail="",
        source_topic="texts",
        source_partition=0,
        source_offset=3,
        original_key_b64=None,
        original_value_b64="",
    )
    bad = ScoreRecord(id="texts:0:3", text_timestamp_ms=T0, refusal=refusal)
    [outcome] = table.add(bad, T0)
    assert isinstance(outcome, RefusedByClassifier)
    assert table.add(bad, T0) == []  # the second classifier's refusal changes nothing


def test_unknown_classifier_scores_are_dropped(table):
    table.add(score("m", a=0.3, zzz=0.99), T0)
    assert table.counts["unknown_classifier_scores"] == 1
    [result] = table.add(score("m", b=0.1), T0)
    assert "zzz" not in result.scores


def test_stale_scores_are_dropped_not_joined(table):
    assert table.add(score("old", ts=T0 - 61_000, a=0.5), T0) == []
    assert table.counts["stale_scores"] == 1 and not table.pending


def replay(changes, into):
    """Changelog records through their wire format, in order, into a fresh table."""
    for key, state in changes.items():
        if isinstance(key, bytes):
            block = None if state is None else DecidedBlock.model_validate_json(encode(state))
            into.restore_block(key, block)
        else:
            state = None if state is None else JoinState.model_validate_json(encode(state))
            into.restore(key, state)
    return into


def test_changelog_replay_restores_pending_and_decided(view, table):
    table.add(score("p", a=0.3), T0)
    table.add(score("p", version="2", b=0.7), T0)  # kept through the round trip as b@2
    table.add(score("d", a=0.3, b=0.1), T0)
    restored = replay(table.take_changes(), JoinTable(view, timeout_ms=1000, horizon_ms=60_000))
    assert set(restored.pending) == {"p"} and len(restored.done) == 1
    assert restored.add(score("d", b=0.9), T0) == []
    vote(view, "b", since=0, version="2")
    [result] = restored.recheck(T0)  # b@2's score now votes
    assert result.id == "p" and result.versions == {"a": "1", "b": "2"} and result.label == "b"


def test_changelog_replay_keeps_the_timeout_clock(view, table):
    table.add(score("p", a=0.3), T0)
    restored = JoinTable(view, timeout_ms=1000, horizon_ms=60_000)
    for message_id, state in table.take_changes().items():
        restored.restore(message_id, state)
    assert restored.expire(T0 + 999) == []
    [result] = restored.expire(T0 + 1000)
    assert result.id == "p" and result.missing == ["b"]


def test_a_complete_decision_leaves_one_block_that_leaves_with_the_window(view):
    table = JoinTable(view, timeout_ms=1000, horizon_ms=60_000, retry_window_ms=30_000)
    table.add(score("m", a=0.1, b=0.2), T0)
    table.add(score("n", a=0.1, b=0.2), T0)
    [(key, block)] = table.take_changes().items()  # no record per message: one block
    assert isinstance(block, DecidedBlock) and not table.decided and len(table.done) == 2
    table.expire(T0 + 29_999)
    assert table.take_changes() == {}
    table.expire(T0 + 30_001)
    assert table.take_changes() == {key: None}


def test_a_timeout_marker_stays_until_the_missing_voter_answers(table):
    table.add(score("m", a=0.1), T0)
    [result] = table.expire(T0 + 1000)
    assert result.missing == ["b"] and table.decided["m"].missing == {"b@1"}
    assert table.take_changes()["m"].missing == ["b@1"]
    assert table.add(score("m", b=0.9), T0 + 5000) == []  # late: no second result
    assert not table.decided and table.take_changes()["m"] is None
    assert table.add(score("m", b=0.9), T0 + 6000) == []  # from the retry window now
    assert table.counts["late_scores"] == 2


def test_markers_expire_after_the_horizon(table):
    table.add(score("m", a=0.1), T0)
    table.expire(T0 + 1000)
    table.take_changes()
    table.expire(T0 + 61_001)
    assert not table.decided and table.take_changes() == {"m": None}


def text_score(message_id, fingerprint, offset, **probabilities):
    base = score(message_id, **probabilities)
    return base.model_copy(update={"fingerprint": fingerprint, "source": f"texts:0:{offset}"})


def test_another_text_under_a_pending_id_is_one_dead_letter_never_a_mixed_join(table):
    assert table.add(text_score("m", "aaaa", 5, a=0.9), T0) == []
    [conflict] = table.add(text_score("m", "bbbb", 9, a=0.1), T0)
    assert isinstance(conflict, Conflict) and conflict.reason == Reason.DUPLICATE_ID
    assert "texts:0:5" in conflict.detail and "texts:0:9" in conflict.detail
    assert table.add(text_score("m", "bbbb", 9, b=0.8), T0) == []  # its other classifier
    [result] = table.add(text_score("m", "aaaa", 5, b=0.2), T0)
    assert result.scores == {"a": 0.9, "b": 0.2}  # the first text's scores only
    assert table.add(text_score("m", "bbbb", 9, b=0.8), T0) == []  # still one dead letter


def test_another_text_after_the_decision_is_one_dead_letter_naming_the_first(table):
    table.add(text_score("m", "aaaa", 5, a=0.9, b=0.1), T0)
    assert table.add(text_score("m", "aaaa", 7, a=0.9, b=0.1), T0 + 10) == []  # a retry
    [conflict] = table.add(text_score("m", "bbbb", 9, a=0.1), T0 + 20)
    assert isinstance(conflict, Conflict) and "partition 0 offset 5" in conflict.detail
    assert table.add(text_score("m", "bbbb", 9, b=0.1), T0 + 30) == []
    assert table.counts["conflicting_texts"] == 1 and table.counts["late_scores"] == 2


def test_another_text_while_a_voter_is_still_missing(table):
    table.add(text_score("m", "aaaa", 5, a=0.9), T0)
    table.expire(T0 + 1000)
    [conflict] = table.add(text_score("m", "bbbb", 9, a=0.1), T0 + 1001)
    assert isinstance(conflict, Conflict)
    assert table.take_changes()["m"].conflicts == ["bbbb"]
    assert table.add(text_score("m", "bbbb", 9, b=0.1), T0 + 1002) == []


def test_a_join_of_shadow_scores_only_is_dropped_at_its_timeout(view, table):
    announce(view, "a", version="2")
    assert table.add(score("m", version="2", a=0.4), T0) == []  # after "m" left the window
    assert table.expire(T0 + 1000) == [] and not table.pending
    assert table.counts["unjoined_scores"] == 1


def test_a_timed_out_join_with_a_conflict_is_decided_so_the_conflict_is_kept(view, table):
    announce(view, "a", version="2")
    shadow = text_score("m", "aaaa", 5, a=0.4).model_copy(update={"versions": {"a": "2"}})
    table.add(shadow, T0)
    [conflict] = table.add(text_score("m", "bbbb", 9, a=0.1), T0)
    [result] = table.expire(T0 + 1000)  # no voter answered, but "bbbb" was refused
    assert result.missing == ["a", "b"] and table.decided["m"].conflicts == ["bbbb"]
    assert table.add(text_score("m", "bbbb", 9, b=0.1), T0 + 2000) == []  # no second letter


def test_another_unreadable_record_under_a_seen_id_gets_its_own_refusal(table):
    table.add(text_score("m", "aaaa", 5, a=0.9, b=0.1), T0)
    text = ConsumedRecord("texts", 0, 9, T0, b"m", b"\xff")
    bad = ScoreRecord(
        id="m",
        text_timestamp_ms=T0,
        refusal=Refusal.of_record(text, Reason.INVALID_UTF8, "bad bytes"),
        fingerprint="cccccccccccccccc",
    )
    [refused] = table.add(bad, T0 + 1)
    assert (
        isinstance(refused, RefusedByClassifier) and refused.refusal.reason == Reason.INVALID_UTF8
    )
    assert table.add(bad, T0 + 2) == []
