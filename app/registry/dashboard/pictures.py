"""What the dashboard draws, from what the store and the inference server know: a model's metrics
across versions, a version's evaluation report, traffic, the box. Pure functions from plain data
to `charts.Chart`s; the routes fetch the data."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from app.registry.dashboard.charts import (
    Chart,
    Series,
    bar_chart,
    heatmap,
    histogram,
    line_chart,
    meters,
)
from app.store.records import VersionRecord


def version_number(value: float) -> str:
    return f"v{int(value)}" if value == int(value) else ""


def metric_history(versions: Sequence[VersionRecord]) -> list[Chart]:
    """One chart per metric: its value on each version that has it, oldest first, versions
    labelled and aliased versions ringed with their alias names."""
    ordered = sorted(versions, key=lambda v: v.version)
    names = sorted({k for v in ordered for k, value in v.metrics.items()
                    if isinstance(value, int | float)})
    charts = []
    for name in names:
        having = [v for v in ordered if isinstance(v.metrics.get(name), int | float)]
        series = Series(name, [(float(v.version), float(v.metrics[name])) for v in having],
                        labels=[f"v{v.version}" for v in having],
                        marks=[", ".join(v.aliases) for v in having])
        zero_based = name in {"accuracy", "f1", "roc_auc", "precision", "recall"}
        charts.append(line_chart("metric", f"{name} by version", [series], "version",
                                 f"{name} (held-out rows)", x_format=version_number,
                                 y_range=(0.0, 1.0) if zero_based else None))
    return charts


def evaluation_charts(report: dict[str, Any]) -> list[Chart]:
    """The evaluation report (app/training/evaluation.py) as pictures, in reading order."""
    charts = []
    confusion = report.get("confusion")
    if confusion:
        charts.append(heatmap("confusion", f"Confusion matrix ({report['rows']} rows)",
                              confusion["labels"], confusion["counts"], confusion["normalized"]))
    for key, x, y, x_label, y_label, name, diagonal in (
        ("roc", "fpr", "tpr", "false positive rate (share)", "true positive rate (share)",
         "ROC curve", True),
        ("pr", "recall", "precision", "recall (share)", "precision (share)",
         "Precision-recall curve", False),
    ):
        curve = report.get(key)
        if curve:
            points = list(zip(curve[x], curve[y], strict=True))
            title = f"{name}, AUC {curve['auc']:.4f} (positive class {curve['positive']})"
            charts.append(line_chart(key, title, [Series(name, points)], x_label, y_label,
                                     y_range=(0.0, 1.0), diagonal=diagonal))
    scatter = report.get("scatter")
    if scatter:
        points = list(zip(scatter["actual"], scatter["predicted"], strict=True))
        charts.append(line_chart("scatter", f"Predicted against actual ({scatter['shown']} of "
                                 f"{report['rows']} rows)", [Series("rows", points)],
                                 "actual value (target's unit)",
                                 "predicted value (target's unit)", diagonal=True, lines=False))
    residuals = report.get("residuals")
    if residuals:
        charts.append(histogram("residuals", "Residuals (actual minus predicted)",
                                residuals["edges"], residuals["counts"],
                                "residual (target's unit)"))
    features = report.get("features")
    if features:
        source = features[0]["from"]
        label = "importance (share of impurity decrease)" if source == "feature_importances_" \
            else "coefficient (per unit of the feature)"
        charts.append(bar_chart("features", f"Top {len(features)} features ({source})",
                                [(f["name"], f["importance"]) for f in features], label))
    return charts


def clock(minute: float) -> str:
    """A minute number (minutes since the epoch) as HH:MM in UTC."""
    return time.strftime("%H:%M", time.gmtime(minute * 60))


def traffic_charts(model: str, buckets: Sequence[dict[str, Any]]) -> list[Chart]:
    """Requests and errors per minute, and p50/p99 latency, from the inference server's history
    (GET /v1/models/{name}/traffic). Minutes with no request are zeros, so gaps show as gaps."""
    if not buckets:
        return []
    minutes = [float(b["minute"]) for b in buckets]
    requests = Series("requests", [(m, float(b["requests"])) for m, b in zip(minutes, buckets,
                                                                              strict=True)])
    errors = Series("errors", [(m, float(b["errors"])) for m, b in zip(minutes, buckets,
                                                                          strict=True)])
    served = [(m, b) for m, b in zip(minutes, buckets, strict=True) if b["p50_ms"] is not None]
    p50 = Series("p50", [(m, float(b["p50_ms"])) for m, b in served])
    p99 = Series("p99", [(m, float(b["p99_ms"])) for m, b in served])
    charts = [line_chart("traffic", f"{model}: requests per minute", [requests, errors],
                         "time (UTC)", "requests per minute", x_format=clock)]
    if served:
        charts.append(line_chart("latency", f"{model}: latency per minute", [p50, p99],
                                 "time (UTC)", "latency (ms)", x_format=clock,
                                 x_range=(minutes[0], minutes[-1])))
    return charts


def box_charts(disk: dict[str, int | None], processes: Sequence[tuple[str, int]],
               cache: dict[str, Any] | None) -> list[Chart]:
    """Disk (the data dir against the free space), memory of each process, and the loaded
    models against cache_memory_mb."""
    from app.registry.dashboard.filters import filesize

    def size(value: float) -> str:
        return filesize(int(value))

    charts = []
    used, free = disk.get("data_bytes"), disk.get("free_bytes")
    if used is not None:
        capacity = float(used + free) if free is not None else None
        charts.append(meters("disk", "Disk: the data dir against the room on its disk",
                             [("data dir", float(used), capacity)], size, "bytes"))
    if processes:
        charts.append(meters("memory", "Memory of each process (resident)",
                             [(name, float(rss), None) for name, rss in processes], size,
                             "bytes resident"))
    if cache is not None:
        budget = float(cache["cache_memory_bytes"])
        charts.append(meters("cache", f"Loaded models: {cache['loaded_models']} "
                             "against cache_memory_mb",
                             [("memory the loaded models took (RSS)",
                               float(cache["loaded_bytes"]), budget)],
                             size, "bytes"))
    return charts
