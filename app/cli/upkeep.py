"""Sub-commands that keep a box healthy for months without a person: gc (retention by hand),
backup and restore. They work on the data dir directly, like `doctor`; gc and backup are safe
while `serve` runs (the store's write lock and reference rule hold across processes)."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.common import Command, print_json, settings_from

RETENTION_SETTINGS = ("home", "keep_versions", "keep_datasets_days")


def cmd_gc(args: argparse.Namespace) -> int:
    from app.store import Store
    from app.store.retention import collect, policy_of

    settings = settings_from(args)
    if not settings.paths.database.exists():
        print(f"No database at {settings.paths.database}: nothing to collect.")
        return 0
    store = Store(settings.paths)
    try:
        report = collect(store, policy_of(settings), dry_run=args.dry_run)
    finally:
        store.close()
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.render())
    return 0


def add_commands(sub: Any, command: Command) -> None:
    gc = command(
        "gc", cmd_gc,
        "Remove versions beyond keep_versions and datasets older than keep_datasets_days, and "
        "free their files (what runs after every new version), with a report.",
        RETENTION_SETTINGS,
    )
    gc.add_argument("--dry-run", action="store_true",
                    help="Only report what would go and the bytes it would free.")
    gc.add_argument("--json", action="store_true")
