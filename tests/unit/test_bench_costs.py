"""The bench's cost arithmetic: CPU per text and at rest by role, the stack's total without the
bench's own clients, the warm-up's settling, the sweep's bend, and how the report prints them."""

from __future__ import annotations

import os

import pytest

from triage.tools.bench import costs, warmup
from triage.tools.bench.costs import (
    format_roles,
    less_rest,
    per_text_ms,
    percent_of_core,
    role_medians,
    roles,
    stack_total,
)
from triage.tools.bench.sweep import bend_rate


def test_cpu_seconds_per_text_are_milliseconds_per_text_by_role():
    used = {"classifiers": 3.0, "aggregator": 1.5, "broker": 6.0, "bench": 0.9}
    by_role = per_text_ms(used, texts=300)
    assert by_role == {"classifiers": 10.0, "aggregator": 5.0, "broker": 20.0, "bench": 3.0}
    assert stack_total(by_role) == 35.0  # the bench's clients are not the stack's


def test_at_rest_is_percent_of_one_core_and_the_total_leaves_the_bench_out():
    rest = percent_of_core({"monitor": 0.2, "broker": 0.8, "bench": 0.5}, seconds=10)
    assert rest == {"monitor": 2.0, "broker": 8.0, "bench": 5.0}
    assert stack_total(rest) == 10.0


def test_the_settle_after_the_last_result_is_counted_less_the_stacks_rest():
    used = {"monitor": 0.30, "broker": 1.00, "bench": 0.01}
    rest = {"monitor": 2.0, "broker": 3.0}  # % of one core; the bench has none
    settled = less_rest(used, rest, seconds=2.5)
    assert settled == pytest.approx({"monitor": 0.25, "broker": 0.925, "bench": 0.01})
    assert less_rest({"monitor": 0.01}, {"monitor": 2.0}, seconds=2.5) == {"monitor": 0.0}


def test_roles_group_children_by_what_they_do_and_name_the_broker_only_when_known():
    children = [("classifier a", 11), ("classifier b", 12), ("aggregator", 13), ("monitor", 14)]
    found = roles([*children, ("gateway", 15)], broker_pids=[99])
    assert found == {
        "classifiers": [11, 12],
        "aggregator": [13],
        "monitor": [14],
        "gateway": [15],
        "broker": [99],
        "bench": [os.getpid()],
    }
    assert "broker" not in roles(children, broker_pids=[])


def test_role_medians_take_each_roles_median_over_the_runs_that_have_it():
    runs = [{"a": 1.0, "b": 5.0}, {"a": 3.0, "b": 7.0}, {"a": 2.0}]
    assert role_medians(runs) == {"a": 2.0, "b": 6.0}


def test_format_roles_says_the_bench_is_not_counted():
    text = format_roles({"classifiers": 3.1, "bench": 1.25}, " %")
    assert text == "classifiers 3.10 %; the bench's clients 1.25 % (not counted)"


@pytest.mark.parametrize(
    ("p99s", "expected"),
    [
        ([], False),
        ([100.0], False),  # one round is never enough
        ([300.0, 100.0], False),  # still falling: the broker is compiling
        ([100.0, 124.0], True),
        ([100.0, 76.0], True),
        ([100.0, 126.0], False),
        ([400.0, 120.0, 110.0], True),
        ([120.0, float("nan")], False),  # a round without results never settles
    ],
)
def test_warm_up_settles_when_a_rounds_p99_is_within_a_quarter_of_the_one_before(p99s, expected):
    assert warmup.settled(p99s) is expected


def test_warm_up_waits_for_the_brokers_jit_when_it_is_measured():
    assert not warmup.settled([200.0, 210.0], [30.0, 12.0])  # still compiling
    assert warmup.settled([200.0, 210.0], [30.0, 4.0])
    assert warmup.another_round([200.0, 210.0], elapsed_s=4, round_jit_pct=[30.0, 12.0])
    assert not warmup.another_round([200.0, 210.0], 4, [30.0, 12.0], max_s=4)


def test_the_jit_is_read_from_the_compiler_threads_of_a_jvm():
    assert costs.jit_cpu_seconds([]) == 0
    assert costs.jit_cpu_seconds([os.getpid()]) == 0  # a Python process has none
    assert costs.jit_cpu_seconds([2**22 + 7]) == 0  # gone: counts nothing


def test_warm_up_rounds_go_on_until_settled_or_out_of_time():
    assert warmup.another_round([], elapsed_s=100)  # two rounds always
    assert warmup.another_round([500.0], elapsed_s=100)
    assert warmup.another_round([500.0, 200.0], elapsed_s=4)
    assert not warmup.another_round([500.0, 200.0], elapsed_s=warmup.MAX_S)
    assert not warmup.another_round([200.0, 210.0], elapsed_s=4)


def test_a_round_is_two_seconds_of_traffic_or_a_fixed_count_at_full_speed():
    assert warmup.round_size(50) == 100
    assert warmup.round_size(0.2) == 1
    assert warmup.round_size(None) == warmup.FULL_SPEED_ROUND


def test_the_bend_is_the_first_rate_whose_p99_exceeds_one_and_a_half_times_the_lowest_rates():
    assert bend_rate([(200, 400.0), (10, 100.0), (50, 140.0), (100, 151.0)]) == 100
    assert bend_rate([(10, 100.0), (50, 150.0), (200, 149.0)]) is None
    assert bend_rate([]) is None
