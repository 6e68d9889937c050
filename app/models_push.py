"""`modeldepot models push`: upload a local model file, converting a pickle to skops first.

The user trusts their own file, so the command line may load it; the server then receives a
skops file it can load without running code. A pickle skops cannot represent is sent as a
trusted pickle (which needs the token), as `--keep-pickle` does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from app.client import Client
from app.errors import BadRequest


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
