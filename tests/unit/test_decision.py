from aggregator.decision import Decision, decide


def test_highest_probability_wins():
    assert decide({"a": 0.2, "b": 0.9, "c": 0.4}) == Decision("b", 0.9)


def test_ties_break_alphabetically():
    assert decide({"b": 0.5, "a": 0.5}).label == "a"


def test_abstains_below_threshold_and_reports_probability():
    assert decide({"a": 0.3, "b": 0.4}, threshold=0.5) == Decision(None, 0.4)


def test_no_scores_abstains():
    assert decide({}) == Decision(None, 0.0)
