from triage.core.model.decision import Decision, decide, would_change_winner


def test_highest_probability_wins():
    assert decide({"a": 0.2, "b": 0.9, "c": 0.4}) == Decision("b", 0.9)


def test_ties_break_alphabetically():
    assert decide({"b": 0.5, "a": 0.5}).label == "a"


def test_abstains_below_threshold_and_reports_probability():
    assert decide({"a": 0.3, "b": 0.4}, threshold=0.5) == Decision(None, 0.4)


def test_no_scores_abstains():
    assert decide({}) == Decision(None, 0.0)


def test_shadow_replacing_a_vote_changes_the_winner_only_when_it_wins_or_loses():
    votes = {"a": 0.6, "b": 0.5}
    assert would_change_winner(votes, "b", 0.7)  # b's new version would win
    assert not would_change_winner(votes, "b", 0.1)  # a still wins
    assert would_change_winner(votes, "a", 0.1)  # a's new version would lose to b
    assert not would_change_winner(votes, "a", 0.9)


def test_shadow_of_a_class_that_does_not_vote_yet_is_added():
    assert would_change_winner({"a": 0.6}, "new", 0.8)
    assert not would_change_winner({"a": 0.6}, "new", 0.2)
    assert would_change_winner({}, "new", 0.2)  # from abstaining (no votes) to a label


def test_shadow_judged_with_the_threshold():
    assert not would_change_winner({"a": 0.3}, "b", 0.4, threshold=0.5)  # still abstains
    assert would_change_winner({"a": 0.3}, "b", 0.6, threshold=0.5)
