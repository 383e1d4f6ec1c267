"""The Grafana dashboard's panels drawn from Prometheus' HTTP API, as one PNG (no Grafana).

Every panel of `deploy/grafana/dashboards/triage.json` (rows' nested panels included, in
dashboard order) becomes one subplot: its title, one line per series named by the target's
`legendFormat` as Grafana names it, its unit on the y axis. Each target's `expr` runs through
`/api/v1/query_range` over one time window after Grafana's built-in variables (`$__interval`,
`$__rate_interval`, `$__range`, …) are replaced by durations derived from that window. A panel
with no data says so, as Grafana does. Legends sit below their plot; in a panel where some
series moved, the ones that stayed at 0 (label values never used, such as most dead-letter
reasons) or have no samples are drawn but only counted there. matplotlib runs headless (Agg);
HTTP is urllib.

    python -m triage.tools.dashboard_render --prometheus http://localhost:9090 --out dashboard.png
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DASHBOARD = (
    Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards" / "triage.json"
)
COLUMNS = 3
SCRAPE_INTERVAL_S = 15.0  # Grafana's default when the data source does not say

# Grafana's units, as the y axis label; percentunit gets a percent formatter instead.
UNITS = {
    "s": "seconds",
    "ms": "milliseconds",
    "reqps": "per second",
    "ops": "operations/s",
    "bytes": "bytes",
    "percent": "%",
    "percentunit": "",
    "short": "",
    "none": "",
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")
_LEGEND_LABEL = re.compile(r"\{\{\s*(.+?)\s*\}\}")


class PrometheusError(RuntimeError):
    """Prometheus answered, with an error (a bad query, a too fine step)."""


@dataclass
class Series:
    name: str
    values: list[float]  # one per step of the window, NaN where Prometheus has no sample

    @property
    def empty(self) -> bool:
        return all(math.isnan(v) for v in self.values)

    @property
    def at_zero(self) -> bool:
        return not self.empty and all(v == 0 or math.isnan(v) for v in self.values)


@dataclass
class Panel:
    title: str
    unit: str
    series: list[Series] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        return not all(s.empty for s in self.series)

    @property
    def at_zero(self) -> bool:
        """Every series with data stayed at 0."""
        return all(s.at_zero for s in self.series if not s.empty)


def duration(seconds: float) -> str:
    """A Prometheus duration: `1m`, `30s`, `1500ms`."""
    ms = max(1, round(seconds * 1000))
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def substitute(
    expr: str, start: float, end: float, step: float, scrape_interval: float = SCRAPE_INTERVAL_S
) -> str:
    """`expr` with Grafana's built-in variables replaced as Grafana would for this window.

    `$__interval` is the step; `$__rate_interval` is max(step + scrape interval, 4 × scrape
    interval), Grafana's rule. Dashboard variables (templating) are not supported: they raise.
    """
    values = {
        "__interval": duration(step),
        "__interval_ms": str(round(step * 1000)),
        "__rate_interval": duration(max(step + scrape_interval, 4 * scrape_interval)),
        "__range": duration(end - start),
        "__range_s": str(round(end - start)),
        "__range_ms": str(round((end - start) * 1000)),
    }

    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in values:
            raise ValueError(f"unsupported Grafana variable {match.group(0)} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def legend_name(legend_format: str | None, labels: dict[str, str], expr: str) -> str:
    """A series' name as Grafana shows it: `{{label}}` filled in (a label the series lacks
    stays as its name); without a format, `metric{k="v", …}`, or the query when unlabelled."""
    if legend_format and legend_format != "__auto":
        return _LEGEND_LABEL.sub(lambda m: labels.get(m.group(1)) or m.group(1), legend_format)
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    if not name and not rest:
        return expr
    return f"{name}{{{rest}}}" if rest else name


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels that have queries, rows' nested panels included, top to bottom, left to right."""
    flat: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        flat.extend([panel, *panel.get("panels", [])])
    with_queries = [p for p in flat if any(t.get("expr") for t in p.get("targets", []))]
    return sorted(with_queries, key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))


def steps(start: float, end: float, step: float) -> int:
    return int((end - start) // step) + 1


def align(values: list[list[Any]], start: float, end: float, step: float) -> list[float]:
    """Prometheus' `[[t, "v"], …]` onto the window's steps (its timestamps are start + k·step)."""
    out = [math.nan] * steps(start, end, step)
    for t, v in values:
        k = round((float(t) - start) / step)
        if 0 <= k < len(out):
            out[k] = float(v)
    return out


def query_range(
    prometheus_url: str, expr: str, start: float, end: float, step: float
) -> list[dict[str, Any]]:
    """`/api/v1/query_range`'s result: `[{"metric": {labels}, "values": [[t, "v"], …]}, …]`."""
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    url = f"{prometheus_url.rstrip('/')}/api/v1/query_range?{params}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:  # 400/422: the body says why
        try:
            body = json.load(exc)
        except ValueError:
            raise PrometheusError(f"{exc} for {expr!r}") from exc
    if body.get("status") != "success":
        raise PrometheusError(f"{body.get('error', body)} for {expr!r}")
    return body["data"]["result"]


def fetch(
    prometheus_url: str, dashboard: dict[str, Any], start: float, end: float, step: float
) -> list[Panel]:
    panels = []
    for spec in dashboard_panels(dashboard):
        unit = spec.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        panel = Panel(spec.get("title", ""), unit)
        for target in spec["targets"]:
            if target.get("hide") or not target.get("expr"):
                continue
            expr = substitute(target["expr"], start, end, step)
            for result in query_range(prometheus_url, expr, start, end, step):
                name = legend_name(target.get("legendFormat"), result["metric"], expr)
                panel.series.append(Series(name, align(result["values"], start, end, step)))
        panels.append(panel)
    return panels


def draw(panels: list[Panel], start: float, end: float, step: float, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    times = [datetime.fromtimestamp(start + k * step, UTC) for k in range(steps(start, end, step))]
    rows = max(1, math.ceil(len(panels) / COLUMNS))
    fig, axes = plt.subplots(
        rows, COLUMNS, figsize=(4.6 * COLUMNS, 3.1 * rows), squeeze=False, layout="constrained"
    )
    for ax, panel in zip(axes.flat, panels, strict=False):
        ax.set_title(panel.title, fontsize=10, loc="left")
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=5, tz=UTC))
        ax.set_xlim(times[0], times[-1])
        for series in panel.series:
            # A label starting with "_" stays out of the legend; _legend counts those series.
            quiet = series.empty or (series.at_zero and not panel.at_zero)
            ax.plot(times, series.values, label=f"_{series.name}" if quiet else series.name)
        finite = [v for s in panel.series for v in s.values if not math.isnan(v)]
        if finite and min(finite) >= 0:  # from 0, as Grafana's y axis of non-negative data
            ax.set_ylim(0, max(finite) * 1.08 or 1)
        if panel.unit == "percentunit":
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
        elif label := UNITS.get(panel.unit, panel.unit):
            ax.set_ylabel(label, fontsize=8)
        if not panel.has_data:
            ax.text(0.5, 0.5, "No data", ha="center", va="center", transform=ax.transAxes)
        else:
            _legend(ax, panel)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    span = f"{times[0]:%Y-%m-%d %H:%M:%S} – {times[-1]:%H:%M:%S} UTC, step {duration(step)}"
    fig.suptitle(f"triage dashboard · {span}", fontsize=11)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def _legend(ax, panel: Panel) -> None:
    """Below the plot, as Grafana's. Series that stayed at 0 while others did not (unused
    label values), or that have no samples, are drawn but only counted."""
    handles, labels = ax.get_legend_handles_labels()
    zeros = 0 if panel.at_zero else sum(s.at_zero for s in panel.series)
    empty = sum(s.empty for s in panel.series)
    for n, what in ((zeros, "at 0 throughout"), (empty, "without samples")):
        if n:
            handles.append(ax.plot([], [], " ")[0])
            labels.append(f"+{n} more, {what}")
    ax.legend(
        handles,
        labels,
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(0, -0.12),
        frameon=False,
        ncol=2 if len(labels) > 3 and max(map(len, labels)) <= 32 else 1,
        borderaxespad=0,
        handlelength=1.5,
        columnspacing=1,
    )


def render(
    prometheus_url: str, dashboard: Path, out_png: Path, start: float, end: float, step: float
) -> list[Panel]:
    """Draws every panel of `dashboard` over [start, end] (Unix seconds) into `out_png`;
    returns what was drawn."""
    panels = fetch(prometheus_url, json.loads(dashboard.read_text()), start, end, step)
    draw(panels, start, end, step, out_png)
    return panels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m triage.tools.dashboard_render",
        description="Draw the Grafana dashboard's panels from Prometheus' HTTP API into one PNG "
        "(no Grafana needed): one subplot per panel, one line per series.",
        epilog="example: python -m triage.tools.dashboard_render "
        "--prometheus http://localhost:9090 --out dashboard.png --minutes 30",
    )
    parser.add_argument(
        "--prometheus",
        default="http://localhost:9090",
        metavar="URL",
        help="Prometheus' base URL (default %(default)s, docker compose's)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="PNG", help="PNG to write")
    parser.add_argument(
        "--minutes",
        type=float,
        default=60,
        metavar="N",
        help="draw the last N minutes up to now (default %(default)s)",
    )
    parser.add_argument(
        "--step",
        type=float,
        metavar="S",
        help="seconds between points (default: the window / 400, at least 1)",
    )
    parser.add_argument(
        "--dashboard",
        type=Path,
        default=DASHBOARD,
        metavar="JSON",
        help="Grafana dashboard (default deploy/grafana/dashboards/triage.json)",
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0 or (args.step is not None and args.step <= 0):
        parser.error("--minutes and --step must be positive")
    end = time.time()
    start = end - args.minutes * 60
    step = args.step or max(1.0, round((end - start) / 400))
    try:
        panels = render(args.prometheus, args.dashboard, args.out, start, end, step)
    except urllib.error.URLError as exc:
        print(f"dashboard_render: cannot reach {args.prometheus}: {exc.reason}", file=sys.stderr)
        return 1
    except (OSError, ValueError, PrometheusError) as exc:
        print(f"dashboard_render: error: {exc}", file=sys.stderr)
        return 1
    empty = [p.title for p in panels if not p.has_data]
    print(f"{args.out}: {len(panels)} panels, {len(panels) - len(empty)} with data")
    for title in empty:
        print(f"  no data: {title}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
