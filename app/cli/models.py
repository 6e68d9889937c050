"""Sub-commands for models over the registry's API (list, show, push, alias, rm) and predict.

`models push` uploads a local model file, converting a pickle to skops first: the user trusts
their own file, so the command line may load it; the server then receives a skops file. A pickle
skops cannot represent is sent as a trusted pickle (which needs the token), as `--keep-pickle`
does; the server opens it only in its sandbox (docs/security.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from app.cli.common import Command, print_json, registry_client, server_client
from app.cli.evaluation_text import evaluation_text
from app.errors import BadRequest, ModelDepotError

if TYPE_CHECKING:  # the client (http.client, ssl) loads only for commands that talk to a server
    from app.client import Client


def cmd_models_list(args: argparse.Namespace) -> int:
    client = registry_client(args)
    page = client.request(
        "GET", "/api/v1/models", query={"q": args.q, "tag": args.tag or None, "limit": args.limit}
    )
    if args.json:
        print_json(page)
        return 0
    print(f"{'NAME':<32} {'LATEST':>6} {'VERSIONS':>8}  ALIASES")
    for m in page["models"]:
        aliases = ", ".join(f"{a}->{v}" for a, v in m["aliases"].items())
        print(f"{m['name']:<32} {m['latest_version'] or '-':>6} {m['version_count']:>8}  {aliases}")
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    client = registry_client(args)
    name = quote(args.name, safe="")
    if args.version:
        data = client.request(
            "GET", f"/api/v1/models/{name}/versions/{quote(args.version, safe='')}"
        )
        if args.evaluation:
            print(evaluation_text(data.get("evaluation")))
            return 0
    elif args.evaluation:
        raise BadRequest("--evaluation shows one version's report: name the version too.")
    else:
        data = client.request("GET", f"/api/v1/models/{name}")
        data["versions"] = client.request(
            "GET", f"/api/v1/models/{name}/versions", query={"limit": 20}
        )["versions"]
    print_json(data)
    return 0


def cmd_models_push(args: argparse.Namespace) -> int:
    version = push_model(registry_client(args), args)
    print(
        f"pushed {version['model']} version {version['version']} "
        f"({version['format']}, {version['size']} bytes, {version['status']})"
    )
    for warning in version.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_models_alias(args: argparse.Namespace) -> int:
    client = registry_client(args)
    path = f"/api/v1/models/{quote(args.name, safe='')}/aliases/{quote(args.alias, safe='')}"
    if args.delete:
        client.request("DELETE", path)
        print(f"removed alias {args.alias} of {args.name}")
        return 0
    if args.version is None:
        raise ModelDepotError("Give the version to point the alias at, or --delete.")
    client.request("PUT", path, json_body={"version": args.version})
    print(f"{args.name}@{args.alias} -> version {args.version}")
    return 0


def cmd_models_rm(args: argparse.Namespace) -> int:
    client = registry_client(args)
    path = f"/api/v1/models/{quote(args.name, safe='')}"
    if args.version:
        path += f"/versions/{quote(args.version, safe='')}"
    result = client.request("DELETE", path, query={"force": "true" if args.force else None})
    print(f"deleted; freed {result['freed_bytes']} bytes")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """POST a simple-JSON body to the inference server and print its answer."""
    if args.input is not None:
        text = args.input
    elif args.file is not None:
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text(encoding="utf-8")
    else:
        text = sys.stdin.read()
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise ModelDepotError(f"The input is not valid JSON: {exc}.") from exc
    if isinstance(body, list):
        body = {"instances": body}
    if not isinstance(body, dict):
        raise ModelDepotError('Give a JSON object such as {"instances": [[1, 2, 3]]}, or a list.')
    if args.proba:
        body["proba"] = True
    path = f"/v1/models/{quote(args.name, safe='')}"
    if args.version:
        path += f"/versions/{quote(args.version, safe='')}"
    print_json(server_client(args, "inference").request("POST", path + "/predict", json_body=body))
    return 0


def _tags(pairs: list[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise BadRequest(f"A tag looks like key=value, not {pair!r}.")
        tags[key] = value
    return tags


def push_model(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    from app.formats import convert_pickle_to_skops, inspect_file

    path: Path = args.file
    if not path.is_file():
        raise BadRequest(f"No file at {path}.")
    metadata: dict[str, Any] = {"description": args.description, "tags": _tags(args.tag)}
    inspection = inspect_file(path, trust=True, filename=path.name)
    with tempfile.TemporaryDirectory(prefix="modeldepot-push-") as tmp:
        upload = path
        if inspection.format == "pickle" and not args.keep_pickle:
            converted = Path(tmp) / (path.stem + ".skops")
            if convert_pickle_to_skops(path, converted):
                upload = converted
                print(f"converted {path.name} to skops (no code runs when the server loads it)",
                      file=sys.stderr)
            else:
                print("skops cannot represent this model; uploading it as a trusted pickle",
                      file=sys.stderr)
        if upload is path and inspection.requires_trust:
            metadata["trust"] = True
        version: dict[str, Any] = client.upload(args.name, upload, metadata)
    if args.alias:
        client.request(
            "PUT",
            f"/api/v1/models/{quote(args.name, safe='')}/aliases/{quote(args.alias, safe='')}",
            json_body={"version": version["version"]},
        )
    return version


def add_commands(sub: Any, command: Command) -> None:
    models = sub.add_parser("models", help="List, show, push, alias and remove models.")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = command("list", cmd_models_list, "List models.", parent=msub)
    p.add_argument("-q", dest="q", help="Substring of the name or description.")
    p.add_argument("--tag", action="append", help="key:value (repeatable).")
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true")
    p = command("show", cmd_models_show, "Show a model, or one version of it.", parent=msub)
    p.add_argument("name")
    p.add_argument("version", nargs="?", help="Number, 'latest' or alias.")
    p.add_argument("--evaluation", action="store_true",
                   help="Print the version's evaluation report as compact text, not JSON.")
    p = command("push", cmd_models_push, "Upload a model file as a new version.", parent=msub)
    p.add_argument("file", type=Path)
    p.add_argument("--name", required=True, help="Model name.")
    p.add_argument("--description", default="")
    p.add_argument("--tag", action="append", default=[], help="key=value (repeatable).")
    p.add_argument("--alias", help="Point this alias at the new version.")
    p.add_argument(
        "--keep-pickle",
        action="store_true",
        help="Upload a pickle as it is instead of converting it to skops.",
    )
    p = command(
        "alias", cmd_models_alias, "Point an alias at a version, or --delete it.", parent=msub
    )
    p.add_argument("name")
    p.add_argument("alias")
    p.add_argument("version", nargs="?", type=int)
    p.add_argument("--delete", action="store_true")
    p = command("rm", cmd_models_rm, "Delete a model, or one version of it.", parent=msub)
    p.add_argument("name")
    p.add_argument("version", nargs="?")
    p.add_argument("--force", action="store_true", help="Delete even if aliases point into it.")
    p = command("predict", cmd_predict, "Ask the inference server for predictions.")
    p.add_argument("name", help="Model name.")
    p.add_argument(
        "--version", help="Number, 'latest' or alias (default: production, else latest)."
    )
    p.add_argument(
        "--input", "-i", help="JSON body or list of rows, e.g. '[[5.1, 3.5, 1.4, 0.2]]'."
    )
    p.add_argument("--file", "-f", type=Path, help="Read the JSON from a file ('-' for stdin).")
    p.add_argument("--proba", action="store_true", help="Also return class probabilities.")
