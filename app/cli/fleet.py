"""`modeldepot export`, `import` and `keys`: the command-line side of bundles.

`export` and `import` are client commands: the running registry reads and writes the store (and
signs with this box's key), the file streams over loopback HTTP in 1 MiB chunks. `keys` works on
the data dir itself, like `token`: a box's identity is set up before anything is served, and
the registry reads the key files on every import. `keys` (and so cryptography) is imported by
the commands that use it, so the other commands start as fast as before.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from app.errors import ModelDepotError

Command = Callable[..., argparse.ArgumentParser]
CHUNK = 1 << 20


def _client(args: argparse.Namespace) -> Any:
    from app.cli.common import registry_client

    return registry_client(args)


def _paths(args: argparse.Namespace) -> Any:
    from app.cli.common import settings_from

    return settings_from(args).paths


def cmd_export(args: argparse.Namespace) -> int:
    """Stream the bundle into `<out>.part`, fsync, then rename: a stick pulled out mid-way never
    holds a file that looks complete."""
    out: Path = args.output
    part = out.with_name(out.name + ".part")
    query = {"model": args.refs, "sign": "false" if args.no_sign else None}
    try:
        with part.open("wb") as f:
            size = _client(args).request("GET", "/api/v1/bundles", query=query, sink=f)
            f.flush()
            os.fsync(f.fileno())
        part.replace(out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    print(f"wrote {out} ({size} bytes)")
    return 0


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def cmd_import(args: argparse.Namespace) -> int:
    path: Path = args.bundle
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelDepotError(f"Cannot read {path}: {exc.strerror}.") from exc
    query = {"dry_run": "true" if args.dry_run else None, "trust": "true" if args.trust else None,
             "aliases": "false" if args.no_aliases else None}
    report = _client(args).request(
        "POST", "/api/v1/bundles", query=query, body=_file_chunks(path),
        headers={"Content-Type": "application/x-tar", "Content-Length": str(size)})
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    print(render_report(report))
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def render_report(report: dict[str, Any]) -> str:
    publisher = report["publisher"]
    signer = (f"signed by {publisher['trusted_as']} ({publisher['key']})" if publisher["key"]
              else "unsigned")
    lines = [f"{'dry run: nothing was changed. ' if report['dry_run'] else ''}"
             f"bundle from {publisher['instance']}, {signer}"]
    verb = "would add" if report["dry_run"] else "added"
    lines += [f"  {verb} {a['model']} v{a['version']} (bundle v{a['bundle_version']}, "
              f"{a['format']}, twin {a['twin']})" for a in report["added"]]
    lines += [f"  present {p['model']} v{p['version']} (bundle v{p['bundle_version']})"
              for p in report["present"]]
    lines += [f"  alias {a['model']}@{a['alias']}: {a['from'] or '-'} -> {a['to']}"
              for a in report["aliases"]]
    return "\n".join(lines)


def cmd_keys_create(args: argparse.Namespace) -> int:
    from app.fleet import keys

    key = keys.create_key(_paths(args), args.name)
    print(f"created this box's key {key.name} ({key.key_id}); give this line to the boxes that "
          "import its bundles (`modeldepot keys trust`):")
    print(key.line)
    return 0


def cmd_keys_show(args: argparse.Namespace) -> int:
    from app.fleet import keys

    key = keys.own_key(_paths(args))
    if key is None:
        raise ModelDepotError("This box has no key yet: create one with `modeldepot keys create`.")
    print(key.line)
    return 0


def cmd_keys_trust(args: argparse.Namespace) -> int:
    from app.fleet import keys

    text = args.key
    if text == "-":
        text = sys.stdin.read()
    elif not text.startswith(keys.KIND) and Path(text).is_file():
        text = Path(text).read_text(encoding="utf-8")
    key = keys.trust_key(_paths(args), text, args.name)
    print(f"trusting {key.name} ({key.key_id})")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from app.fleet import keys

    paths = _paths(args)
    own = keys.own_key(paths)
    print(f"this box: {own.line} ({own.key_id})" if own else "this box: no key")
    trusted = keys.trusted_keys(paths)
    if not trusted:
        print("trusted: none")
    for key in trusted:
        print(f"trusted: {key.name} {key.key_id}  {key.line}")
    return 0


def cmd_keys_rm(args: argparse.Namespace) -> int:
    from app.fleet import keys

    key = keys.untrust_key(_paths(args), args.name)
    print(f"no longer trusting {key.name} ({key.key_id})")
    return 0


def add_commands(sub: Any, command: Command) -> None:
    """Register the sub-commands; `command` is cli.build_parser's helper (adds setting flags)."""
    p = command("export", cmd_export, "Write models to a bundle file (signed with this box's key).")
    p.add_argument("refs", nargs="+", metavar="NAME[@REF]",
                   help="A model (every ready version) or one version: number, latest or alias.")
    p.add_argument("-o", "--output", type=Path, required=True, help="The bundle file to write.")
    p.add_argument("--no-sign", action="store_true", help="Do not sign, even with a key.")
    p = command("import", cmd_import, "Import a bundle file: all of it, or nothing.")
    p.add_argument("bundle", type=Path)
    p.add_argument("--dry-run", action="store_true", help="Only show what would change.")
    p.add_argument("--trust", action="store_true",
                   help="Accept pickles from an unsigned bundle (they run code when loaded).")
    p.add_argument("--no-aliases", action="store_true", help="Leave this box's aliases alone.")
    p.add_argument("--json", action="store_true")

    group = sub.add_parser("keys", help="This box's signing key and the publishers it trusts.")
    ksub = group.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    home = ("home",)
    p = command("create", cmd_keys_create, "Create this box's key pair.", home, parent=ksub)
    p.add_argument("--name", help="The key's name (default: the host name).")
    command("show", cmd_keys_show, "Print this box's public key line.", home, parent=ksub)
    p = command("trust", cmd_keys_trust, "Trust a publisher's public key.", home, parent=ksub)
    p.add_argument("key", help="The public key line (quoted), a file holding it, or - for stdin.")
    p.add_argument("--name", help="Trust it under this name (default: the name in the line).")
    command("list", cmd_keys_list, "List this box's key and the trusted keys.", home, parent=ksub)
    p = command("rm", cmd_keys_rm, "Stop trusting a publisher key.", home, parent=ksub)
    p.add_argument("name")

