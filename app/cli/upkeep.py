"""Sub-commands that keep a box healthy for months without a person: gc (retention by hand),
backup and restore. They work on the data dir directly, like `doctor`; gc and backup are safe
while `serve` runs (the store's write lock and reference rule hold across processes)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app.cli.common import Command, print_json, settings_from
from app.errors import Conflict

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


def cmd_backup(args: argparse.Namespace) -> int:
    from app.store.backup import backup

    settings = settings_from(args)
    report = backup(settings.paths, Path(args.file))
    print(report.render())
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from app.store import Store
    from app.store.backup import restore
    from app.store.doctor import run_doctor
    from app.store.reconcile import reconcile
    from app.supervisor.lock import holder

    settings = settings_from(args)
    running = holder(settings.home) if settings.home.exists() else None
    if running:
        raise Conflict(f"ModelDepot is running on {settings.home} (pid {running}). Stop it "
                       "(`modeldepot stop`) before restoring into its data dir.")
    report = restore(settings.paths, Path(args.file), force=args.force)
    print(f"restored {report.versions} version(s), {report.datasets} dataset(s), "
          f"{report.files} file(s) made by ModelDepot {report.made_by} into {settings.home}")
    store = Store(settings.paths)  # migrates a backup from an older release
    try:
        reconcile(store)
        doctor = run_doctor(store)
    finally:
        store.close()
    print(doctor.render())
    return 0 if doctor.healthy else 1


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
    backup = command(
        "backup", cmd_backup,
        "Write the data dir (database snapshot, the model and dataset files it names, token, "
        "config, keys) to one file; safe while `serve` runs.", ("home",))
    backup.add_argument("file", metavar="FILE", help="Where to write the backup.")
    restore = command(
        "restore", cmd_restore,
        "Restore a backup into a stopped, empty data dir, then run the doctor's check.",
        ("home",))
    restore.add_argument("file", metavar="FILE", help="A file `modeldepot backup` wrote.")
    restore.add_argument("--force", action="store_true",
                         help="Replace what a non-empty data dir holds (logs are kept).")
