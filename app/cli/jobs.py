"""`modeldepot datasets`, `modeldepot train` and `modeldepot jobs`: client commands over HTTP.

`train --dataset` takes a local CSV (uploaded first; the server deduplicates by content) or the
id of a stored dataset. `--wait` polls the job and draws a progress bar on stderr; Ctrl+C stops
waiting, never the job.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from app.cli.common import Command, print_json, registry_client
from app.errors import BadRequest

POLL_SECONDS = 0.5
BAR_WIDTH = 30
FINAL = ("succeeded", "failed", "cancelled")
_DATASET_ID = re.compile(r"[0-9a-f]{64}")

def _job_path(job_id: str, tail: str = "") -> str:
    return f"/api/v1/jobs/{quote(job_id, safe='')}{tail}"


def parse_param(text: str) -> tuple[str, Any]:
    """`key=value`; the value is read as JSON when it is (200, 0.5, true, null, [64, 32]),
    else kept as text (gini)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise BadRequest(f"A param looks like key=value, not {text!r}.")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def progress_line(job: dict[str, Any]) -> str:
    filled = round(job["progress"] * BAR_WIDTH)
    step = job["step"] if job["step"] not in ("", job["status"]) else ""
    return (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {job['progress']:4.0%}  "
            f"{job['status']:<9} {step}").rstrip()


def wait_for(client: Any, job_id: str, out: TextIO | None = None) -> dict[str, Any]:
    """Poll until the job ends, drawing progress on `out` (default stderr): one redrawn line on
    a terminal, else a line per change of step."""
    out = out or sys.stderr
    tty = out.isatty()
    shown, last_step = "", ("", "")
    while True:
        job: dict[str, Any] = client.request("GET", _job_path(job_id))
        line = progress_line(job)
        if tty:
            out.write("\r" + line.ljust(len(shown)))
            out.flush()
        elif (job["status"], job["step"]) != last_step:
            out.write(line + "\n")
        shown, last_step = line, (job["status"], job["step"])
        if job["status"] in FINAL:
            if tty:
                out.write("\n")
            return job
        time.sleep(POLL_SECONDS)


def describe(job: dict[str, Any]) -> str:
    if job["status"] == "succeeded":
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in job["metrics"].items())
        return f"job {job['id']} succeeded: {job['model']} version {job['version']} ({metrics})"
    if job["status"] == "failed":
        return f"job {job['id']} failed: {job['error']}"
    return f"job {job['id']} {job['status']}"


# -- datasets --------------------------------------------------------------------------------

def cmd_datasets_push(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise BadRequest(f"No file at {path}.")
    data = registry_client(args).upload_dataset(path, args.name)
    names = ", ".join(c["name"] for c in data["columns"][:10])
    print(f"dataset {data['id']} ({data['row_count']} rows; columns {names})")
    return 0


def cmd_datasets_list(args: argparse.Namespace) -> int:
    page = registry_client(args).request("GET", "/api/v1/datasets")
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    print(f"{'ID':<14} {'ROWS':>8} {'COLUMNS':>7}  NAME")
    for d in page["datasets"]:
        print(f"{d['id'][:12]:<14} {d['row_count']:>8} {len(d['columns']):>7}  {d['name']}")
    return 0


# -- train -----------------------------------------------------------------------------------

def _dataset_id(client: Any, ref: str) -> str:
    path = Path(ref)
    if path.is_file():
        data = client.upload_dataset(path)
        print(f"dataset {data['id']} ({data['row_count']} rows)", file=sys.stderr)
        return str(data["id"])
    if _DATASET_ID.fullmatch(ref):
        return ref
    raise BadRequest(f"No file at {ref}, and it is not a dataset id either.")


def cmd_train(args: argparse.Namespace) -> int:
    client = registry_client(args)
    body: dict[str, Any] = {
        "kind": "train",
        "model": args.model,
        "dataset": _dataset_id(client, args.dataset),
        "target": args.target,
        "estimator": args.estimator,
        "params": dict(parse_param(p) for p in args.param),
        "test_size": args.test_size,
    }
    for key in ("alias", "random_state", "description"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.features:
        body["features"] = [f.strip() for f in args.features.split(",") if f.strip()]
    job = client.request("POST", "/api/v1/jobs", json_body=body)
    print(f"job {job['id']} queued", file=sys.stderr)
    if not args.wait:
        print(job["id"])
        return 0
    try:
        job = wait_for(client, job["id"])
    except KeyboardInterrupt:
        print(f"\nstopped waiting; the job goes on (modeldepot jobs cancel {job['id']})",
              file=sys.stderr)
        return 130
    print(describe(job))
    return 0 if job["status"] == "succeeded" else 1


# -- jobs ------------------------------------------------------------------------------------

def cmd_jobs_list(args: argparse.Namespace) -> int:
    page = registry_client(args).request("GET", "/api/v1/jobs",
                                 query={"status": args.status, "limit": args.limit})
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    print(f"{'ID':<34} {'KIND':<8} {'STATUS':<10} {'PROGRESS':>8}  {'MODEL':<24} VERSION")
    for j in page["jobs"]:
        print(f"{j['id']:<34} {j['kind']:<8} {j['status']:<10} {j['progress']:>8.0%}  "
              f"{j['model'] or '-':<24} {j['version'] or '-'}")
    return 0


def cmd_jobs_show(args: argparse.Namespace) -> int:
    print_json(registry_client(args).request("GET", _job_path(args.id)))
    return 0


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    job = registry_client(args).request("DELETE", _job_path(args.id))
    if job["status"] == "cancelled":
        print(f"job {job['id']} cancelled")
    else:
        print(f"job {job['id']} is {job['status']}; it stops at its next step")
    return 0


def cmd_jobs_log(args: argparse.Namespace) -> int:
    client = registry_client(args)
    after = 0
    while True:
        page = client.request("GET", _job_path(args.id, "/log"), query={"after": after})
        for line in page["lines"]:
            print(f"{line['at']}  {line['line']}")
        after = page["next_after"]
        if not args.follow or (page["status"] in FINAL and not page["lines"]):
            return 0
        time.sleep(POLL_SECONDS)


def add_commands(sub: Any, command: Command) -> None:
    """Register the sub-commands; `command` is cli.build_parser's helper (adds setting flags)."""
    datasets = sub.add_parser("datasets", help="Upload and list training datasets (CSV).")
    dsub = datasets.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    p = command("push", cmd_datasets_push, "Upload a CSV (header line first, UTF-8).",
                parent=dsub)
    p.add_argument("file", type=Path)
    p.add_argument("--name", help="Display name (default: the file name).")
    p = command("list", cmd_datasets_list, "List datasets.", parent=dsub)
    p.add_argument("--json", action="store_true")

    p = command("train", cmd_train, "Train a scikit-learn model on a dataset, in the background.")
    p.add_argument("--dataset", required=True, help="A CSV file, or a stored dataset's id.")
    p.add_argument("--target", required=True, help="Column to predict.")
    p.add_argument("--estimator", required=True,
                   help="e.g. sklearn.ensemble.RandomForestClassifier (from the allow-list).")
    p.add_argument("--model", required=True, help="Model that receives the new version.")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="Estimator param, e.g. n_estimators=200 (repeatable).")
    p.add_argument("--features", help="Comma-separated feature columns (default: all others).")
    p.add_argument("--test-size", type=float, default=0.25, help="Held-out share (default 0.25).")
    p.add_argument("--random-state", type=int)
    p.add_argument("--alias", help="Point this alias at the new version on success.")
    p.add_argument("--description")
    p.add_argument("--wait", action="store_true", help="Show progress until the job ends.")

    jobs = sub.add_parser("jobs", help="List, show, cancel and read the log of jobs.")
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    p = command("list", cmd_jobs_list, "List jobs, newest first.", parent=jsub)
    p.add_argument("--status", choices=("queued", "running", *FINAL))
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true")
    p = command("show", cmd_jobs_show, "Show one job.", parent=jsub)
    p.add_argument("id")
    p = command("cancel", cmd_jobs_cancel, "Cancel a queued or running job.", parent=jsub)
    p.add_argument("id")
    p = command("log", cmd_jobs_log, "Print a job's log.", parent=jsub)
    p.add_argument("id")
    p.add_argument("--follow", "-f", action="store_true", help="Keep printing until it ends.")

