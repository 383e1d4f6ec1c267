"""`triage evaluate --report DIR`: one self-contained HTML page plus its PNG plots (and
`triage compare --report DIR`: the impact section alone, tables only).

The page holds the summary tables (ensemble beside the multiclass baseline, the abstention
trade-off, the most confused pairs, every classifier) and four plots: precision-recall curves,
the reliability diagram of the winning probability, accuracy against coverage, and the largest
confusions. The PNGs are written next to `index.html` and also embedded in it as data URIs, so
the page opens anywhere, mailed or archived, without its folder. matplotlib runs headless (Agg).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np

from triage.training.evaluation import Evaluation

HIGHLIGHTED = 6  # classes with the lowest PR AUC get their own colour and legend entry


def write_report(evaluation: Evaluation, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    plots = {
        "pr_curves.png": ("Precision-recall curve of every classifier", _pr_curves),
        "reliability.png": ("Reliability of the winning probability", _reliability),
        "coverage.png": ("Accuracy against coverage when abstaining", _coverage),
        "confusions.png": ("Most confused class pairs", _confusions),
    }
    figures = []
    for name, (title, draw) in plots.items():
        fig = draw(evaluation)
        fig.savefig(out / name, dpi=110, bbox_inches="tight")
        _close(fig)
        figures.append((title, name, base64.b64encode((out / name).read_bytes()).decode()))
    page = out / "index.html"
    page.write_text(_page(evaluation.summary, figures), encoding="utf-8")
    return page


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _pr_curves(ev: Evaluation):
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    fig, ax = plt.subplots(figsize=(7, 5.5))
    per_class = ev.summary["per_class"]
    ranked = sorted(ev.labels, key=lambda label: per_class[label]["pr_auc"] or 0.0)
    worst = set(ranked[:HIGHLIGHTED])
    for j, label in enumerate(ev.labels):
        y = ev.y_true == label
        if not y.any():
            continue
        precision, recall, _ = precision_recall_curve(y, ev.scores[:, j])
        if label in worst:
            ax.plot(
                recall, precision, lw=1.8, label=f"{label} (AP {_fmt(per_class[label]['pr_auc'])})"
            )
        else:
            ax.plot(recall, precision, color="0.75", lw=0.7, alpha=0.6)
    ax.plot([], [], color="0.75", lw=0.7, label="other classes")
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1.01),
        ylim=(0, 1.02),
        title=f"{len(ev.labels)} classifiers; lowest PR AUC highlighted",
    )
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _reliability(ev: Evaluation):
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(7, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    s = ev.summary
    top.plot([0, 1], [0, 1], ls="--", color="0.5", lw=1, label="perfect calibration")
    bins = s["reliability"]
    top.bar(
        [b["lower"] for b in bins],
        [b["accuracy"] for b in bins],
        width=[b["upper"] - b["lower"] for b in bins],
        align="edge",
        alpha=0.35,
        edgecolor="C0",
        label="accuracy in bin",
    )
    top.plot(
        [b["confidence"] for b in bins],
        [b["accuracy"] for b in bins],
        "o-",
        color="C0",
        label=f"ensemble (ECE {s['ece']:.3f})",
    )
    if ev.baseline_proba is not None:
        from triage.training.metrics import reliability_bins

        best = ev.baseline_proba.argmax(axis=1)
        correct = np.asarray(ev.labels)[best] == ev.y_true
        base = reliability_bins(ev.baseline_proba.max(axis=1), correct)
        top.plot(
            [b["confidence"] for b in base],
            [b["accuracy"] for b in base],
            "s--",
            color="C1",
            alpha=0.8,
            label=f"baseline (ECE {s['baseline_ece']:.3f})",
        )
    top.set(
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title="Winning probability against how often the winner is right (15 bins)",
    )
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.hist(ev.confidence, bins=15, range=(0, 1), color="C0", alpha=0.7)
    bottom.set(xlabel="winning probability", ylabel="rows")
    bottom.grid(alpha=0.3)
    return fig


def _coverage(ev: Evaluation):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    points = [p for p in ev.summary["coverage"] if p["accuracy"] is not None]
    ax.plot(
        [p["coverage"] for p in points],
        [p["accuracy"] for p in points],
        "o-",
        label="ensemble (aggregator rule)",
    )
    for p in points[::2]:
        ax.annotate(
            f"{p['threshold']:.2f}",
            (p["coverage"], p["accuracy"]),
            fontsize=7,
            textcoords="offset points",
            xytext=(4, -10),
        )
    if ev.baseline_proba is not None:
        confidence = ev.baseline_proba.max(axis=1)
        correct = np.asarray(ev.labels)[ev.baseline_proba.argmax(axis=1)] == ev.y_true
        xs, ys = [], []
        for p in points:
            answered = confidence >= p["threshold"]
            if answered.any():
                xs.append(answered.mean())
                ys.append(correct[answered].mean())
        ax.plot(xs, ys, "s--", alpha=0.8, label="multiclass baseline")
    ax.set(
        xlabel="coverage (share of messages answered)",
        ylabel="accuracy on answered",
        title="Abstaining below a threshold (labels: threshold)",
    )
    ax.invert_xaxis()
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _confusions(ev: Evaluation):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    pairs = ev.summary["confusions"][::-1]  # largest on top
    fig, ax = plt.subplots(figsize=(9, 0.4 * max(len(pairs), 3) + 1.2))
    y = np.arange(len(pairs))
    with_baseline = bool(pairs) and "baseline_count" in pairs[0]
    height = 0.4 if with_baseline else 0.7
    offset = height / 2 if with_baseline else 0.0
    ax.barh(y + offset, [p["count"] for p in pairs], height, color="C3", label="ensemble")
    if with_baseline:
        ax.barh(
            y - offset,
            [p["baseline_count"] for p in pairs],
            height,
            color="C1",
            alpha=0.8,
            label="multiclass baseline",
        )
    ax.set_yticks(y, [f"{p['true']} → {p['predicted']}" for p in pairs], fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(
        xlabel="test messages (true → predicted)",
        title="Largest confusions of the ensemble" if pairs else "No confusions",
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


_PER_CLASS_HEAD = [
    "class",
    "precision",
    "recall",
    "F1",
    "ROC AUC",
    "PR AUC",
    "Brier",
    "F1 in ensemble",
    "support",
    "version",
    "calibration",
]
_PER_CLASS_FIELDS = [
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "brier",
    "ensemble_f1",
    "support",
    "version",
    "calibration",
]

_STYLE = """<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1300px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }
img { max-width: 620px; border: 1px solid #eee; }
figure.confusions img { max-width: 1000px; }
</style>"""


def _page(s: dict[str, Any], figures: list[tuple[str, str, str]]) -> str:
    per_class = _per_class_table(s)
    return f"""{_head("triage evaluation")}
<h1>triage evaluation</h1>
<p>{s["test_rows"]} test messages ({html.escape(s["test_split"])}), {s["classes"]} classes;
the ensemble decides with the aggregator's rule (highest probability wins,
threshold {s["threshold"]}).</p>
<h2>Ensemble and multiclass baseline</h2>{_summary_table(s)}
<h2>Plots</h2>{_plots(figures)}
<h2>Abstaining below a threshold</h2>{_coverage_table(s)}
<h2>Most confused pairs</h2>{_confusions_table(s)}
<h2>Every classifier (worst ensemble F1 first; precision/recall/F1 at p ≥ 0.5)</h2>{per_class}
</body></html>
"""


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def _table(head: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _summary_table(s: dict[str, Any]) -> str:
    return _table(
        ["", "ensemble", "multiclass baseline"],
        [
            ["accuracy", s["accuracy"], s["baseline_accuracy"]],
            ["macro F1", s["macro_f1"], s["baseline_macro_f1"]],
            ["ECE of the winning probability", s["ece"], s["baseline_ece"]],
        ],
    )


def _coverage_table(s: dict[str, Any]) -> str:
    return _table(
        ["abstain below", "coverage", "accuracy", "answered"],
        [
            [f"{p['threshold']:.2f}", p["coverage"], p["accuracy"], p["answered"]]
            for p in s["coverage"]
        ],
    )


def _confusions_table(s: dict[str, Any]) -> str:
    return _table(
        ["true", "predicted", "ensemble", "baseline"],
        [[p["true"], p["predicted"], p["count"], p.get("baseline_count")] for p in s["confusions"]],
    )


def _per_class_table(s: dict[str, Any]) -> str:
    worst_first = sorted(s["per_class"].items(), key=lambda kv: kv[1]["ensemble_f1"])
    return _table(
        _PER_CLASS_HEAD,
        [[label, *(m[field] for field in _PER_CLASS_FIELDS)] for label, m in worst_first],
    )


def _plots(figures: list[tuple[str, str, str]]) -> str:
    return "".join(
        f'<figure class="{name[:-4]}"><img alt="{html.escape(title)}" '
        f'src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(title)} ({name})</figcaption></figure>"
        for title, name, data in figures
    )


def _head(title: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
{_STYLE}</head><body>"""


def write_comparison_report(summary: dict[str, Any], out: Path) -> Path:
    """`triage compare --report DIR`: DIR/index.html with the impact section (tables only)."""
    out.mkdir(parents=True, exist_ok=True)
    page = out / "index.html"
    page.write_text(
        f"{_head('triage compare')}\n<h1>triage compare</h1>\n{impact_section(summary)}\n"
        "</body></html>\n",
        encoding="utf-8",
    )
    return page


def impact_section(s: dict[str, Any]) -> str:
    """The candidate's impact: every class before and after, and the changed decisions."""
    figures = ("precision", "recall", "f1")
    per_class = _table(
        ["class", *(f"{f} {side}" for f in figures for side in ("before", "after", "Δ")), "n"],
        [
            [name, *(c[f"{f}_{side}"] for f in figures for side in ("before", "after", "delta"))]
            + [c["support"]]
            for name, c in sorted(s["per_class"].items(), key=lambda kv: kv[1]["f1_delta"])
        ],
    )
    flows = _table(
        ["from", "to", "changed", "right after", "wrong after", "right before"],
        [
            [f["from"] or "-", f["to"] or "-", f["changed"], f["right"], f["wrong"], f["was_right"]]
            for f in s["flows"]
        ],
    )
    current = html.escape(s["current_version"] or "(new class)")
    return f"""<h2>Impact of {html.escape(s["label"])}@{html.escape(s["candidate_version"])}
in place of version {current}</h2>
<p>{s["test_rows"]} texts ({html.escape(s["test_split"])}) decided twice with the aggregator's
rule (threshold {s["threshold"]}): {s["changed"]} decisions change; accuracy
{s["accuracy_before"]:.4f} → {s["accuracy_after"]:.4f}. "-" is an abstention.</p>
<h3>Every class, worst F1 change first</h3>{per_class}
<h3>Changed decisions</h3>{flows}"""
