"""triage.tools.dashboard_render without Prometheus: Grafana's variables, legend names, panel order,
alignment of samples on the window's steps, and drawing a PNG from given series."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from triage.tools import dashboard_render as dr

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "triage.json"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30, "30s"), (60, "1m"), (90, "90s"), (3600, "1h"), (1.5, "1500ms"), (0.0001, "1ms")],
)
def test_durations_are_prometheus_durations(seconds, text):
    assert dr.duration(seconds) == text


def test_grafana_variables_are_replaced_from_the_window():
    expr = (
        "rate(a[$__rate_interval]) + rate(b[${__interval}]) + increase(c[[[__range]]])"
        " + d * $__range_s + e * ${__interval_ms:raw} + f * $__range_ms"
    )
    out = dr.substitute(expr, start=1000, end=1600, step=30, scrape_interval=15)
    assert out == (
        "rate(a[1m]) + rate(b[30s]) + increase(c[10m]) + d * 600 + e * 30000 + f * 600000"
    )


def test_rate_interval_follows_grafana_rule():
    # max(step + scrape interval, 4 × scrape interval)
    assert dr.substitute("[$__rate_interval]", 0, 3600, 120, scrape_interval=15) == "[135s]"
    assert dr.substitute("[$__rate_interval]", 0, 60, 1, scrape_interval=1) == "[4s]"


def test_queries_without_variables_are_unchanged_and_unknown_variables_refused():
    expr = 'sum by (consumergroup) (kafka_consumergroup_lag{consumergroup=~".*triage-.*$"})'
    assert dr.substitute(expr, 0, 60, 1) == expr
    with pytest.raises(ValueError, match=r"\$classifier"):
        dr.substitute('up{job="$classifier"}', 0, 60, 1)


def test_the_dashboards_queries_all_substitute():
    for panel in dr.dashboard_panels(json.loads(DASHBOARD.read_text())):
        for target in panel["targets"]:
            assert "$" not in dr.substitute(target["expr"], 0, 3600, 15)


def test_legend_names_as_grafana_shows_them():
    labels = {"__name__": "triage_records_in_total", "service": "aggregator", "topic": "scores"}
    assert dr.legend_name("{{service}} ← {{ topic }}", labels, "x") == "aggregator ← scores"
    # a label the series lacks stays as its name; plain text stays as it is
    assert dr.legend_name("{{outcome}} p95", labels, "x") == "outcome p95"
    assert dr.legend_name(None, labels, "x") == (
        'triage_records_in_total{service="aggregator", topic="scores"}'
    )
    assert dr.legend_name("__auto", {"le": "1"}, "x") == '{le="1"}'
    assert dr.legend_name("", {}, "sum(up)") == "sum(up)"


def test_panels_in_dashboard_order_rows_flattened_and_query_less_panels_skipped():
    def panel(title, x, y, expr="up"):
        return {"title": title, "gridPos": {"x": x, "y": y}, "targets": [{"expr": expr}]}

    dashboard = {
        "panels": [
            panel("second row", 0, 8),
            {"title": "text", "type": "text", "gridPos": {"x": 12, "y": 0}},
            {
                "title": "row",
                "type": "row",
                "gridPos": {"x": 0, "y": 16},
                "panels": [panel("in row, right", 12, 17), panel("in row, left", 0, 17)],
            },
            panel("first, right", 12, 0),
            panel("first, left", 0, 0),
            panel("empty query", 0, 30, expr=""),
        ]
    }
    titles = [p["title"] for p in dr.dashboard_panels(dashboard)]
    assert titles == ["first, left", "first, right", "second row", "in row, left", "in row, right"]
    shipped = json.loads(DASHBOARD.read_text())
    real = dr.dashboard_panels(shipped)
    assert len(real) == len(shipped["panels"]) == 13
    assert real[0]["title"] == "Throughput in (records/s)"
    assert real[-1]["title"].startswith("Where the time goes")  # the full-width last row


def test_samples_are_aligned_on_the_windows_steps():
    start = 1_700_000_000.25
    values = [[start, "1"], [start + 2, "NaN"], [start + 3.0000001, "+Inf"], [start + 99, "5"]]
    out = dr.align(values, start, start + 4, 1)
    assert len(out) == dr.steps(start, start + 4, 1) == 5
    assert out[0] == 1 and math.isnan(out[1]) and math.isnan(out[2])
    assert out[3] == math.inf and math.isnan(out[4])


def test_series_and_panels_know_their_data():
    nan = math.nan
    moving, flat, empty = (
        dr.Series("a", [nan, 1, 2]),
        dr.Series("b", [0, nan, 0]),
        dr.Series("c", [nan, nan, nan]),
    )
    assert (moving.at_zero, flat.at_zero, empty.at_zero) == (False, True, False)
    assert dr.Panel("p", "s", [flat, empty]).at_zero
    assert not dr.Panel("p", "s", [moving, flat]).at_zero
    assert not dr.Panel("p", "s", [empty]).has_data and dr.Panel("p", "s", [flat]).has_data
    assert not dr.Panel("p", "s", []).has_data


def test_draw_writes_a_png_of_every_panel(tmp_path):
    n = 61
    ramp = [float(i) for i in range(n)]
    panels = [
        dr.Panel("Throughput", "reqps", [dr.Series("in", ramp), dr.Series("idle", [0.0] * n)]),
        dr.Panel("Completeness", "percentunit", [dr.Series("complete", [0.5] * n)]),
        dr.Panel("Latency", "s", [dr.Series(f"p{q}", ramp) for q in (50, 95, 99)]),
        dr.Panel("Nothing", "short", []),
    ]
    out = tmp_path / "sub" / "dashboard.png"
    dr.draw(panels, start=1_700_000_000, end=1_700_000_060, step=1, out_png=out)
    png = out.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_main_refuses_a_non_positive_window(capsys):
    with pytest.raises(SystemExit) as exit_:
        dr.main(["--out", "x.png", "--minutes", "0"])
    assert exit_.value.code == 2
    assert "--minutes and --step must be positive" in capsys.readouterr().err
