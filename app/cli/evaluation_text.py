"""The compact text form of a version's evaluation report, for `modeldepot models show NAME
VERSION --evaluation` (the report's shape: app/training/evaluation.py)."""

from __future__ import annotations

from typing import Any

BAR = 30


def evaluation_text(report: dict[str, Any] | None) -> str:
    if not report:
        return ("No evaluation report: versions trained here get one; evaluate an uploaded one "
                "on a stored dataset (POST /api/v1/jobs with kind \"evaluate\").")
    lines = [f"Evaluated on {report['source']}."]
    confusion = report.get("confusion")
    if confusion:
        labels = [str(label) for label in confusion["labels"]]
        width = max(6, *(len(label) for label in labels),
                    *(len(str(c)) for row in confusion["counts"] for c in row)) + 1
        lines.append("Confusion matrix (rows: true class, columns: predicted):")
        lines.append(" " * width + "".join(f"{label:>{width}}" for label in labels))
        for label, row, shares in zip(labels, confusion["counts"], confusion["normalized"],
                                      strict=True):
            right = shares[labels.index(label)]
            lines.append(f"{label:>{width}}" + "".join(f"{c:>{width}}" for c in row)
                         + f"   {right:.0%} right")
    for key, name in (("roc", "ROC AUC"), ("pr", "PR AUC")):
        if key in report:
            lines.append(f"{name} {report[key]['auc']:.4f} (positive class "
                         f"{report[key]['positive']})")
    residuals = report.get("residuals")
    if residuals:
        edges, counts = residuals["edges"], residuals["counts"]
        lines.append("Residuals (actual minus predicted):")
        top = max(counts) or 1
        for lo, hi, count in zip(edges, edges[1:], counts, strict=False):
            lines.append(f"  {lo:>10.4g} to {hi:<10.4g} {count:>6}  "
                         + "#" * round(BAR * count / top))
    features = report.get("features")
    if features:
        lines.append(f"Top features ({features[0]['from']}):")
        top_value = max(abs(f["importance"]) for f in features) or 1
        width = max(len(f["name"]) for f in features)
        for f in features:
            lines.append(f"  {f['name']:<{width}} {f['importance']:>10.4g}  "
                         + "#" * round(BAR * abs(f["importance"]) / top_value))
    return "\n".join(lines)
