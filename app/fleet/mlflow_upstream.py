"""An MLflow Model Registry as a mirror's upstream (docs/mirrors.md, "From an MLflow registry").

MLflow publishes no digests, so this upstream makes the bundle manifest the import path needs
(app/fleet/importer.py) itself:
1. each ref is resolved through MLflow's REST API (the alias route of MLflow 2.3 and later,
   get-latest-versions for a stage, model-versions/get for a number) to a version, its source
   and its run. The ETag is a digest of those: unchanged, nothing else is asked;
2. a version this box brought before (its origin names this server, the version and the run)
   is described from the store, so a rollback costs no download;
3. any other version's folder is listed through the server's artifact proxy
   (`mlflow-artifacts`, the default since MLflow 2.0; `get-download-uri` names it), every name
   checked (one plain segment: no '..', no slash, no NUL), the file count and the bytes capped,
   and each file streamed into one zip in the store's temp dir. No name from the server ever
   becomes a local path: names are only members of that zip, which inspection checks again as
   it checks an uploaded MLflow zip (app/formats/mlflow_zip.py);
4. `fetch` hands the packed zip to the mirror (it is the version's file; its digest is in the
   manifest), and the run's metrics and params ride in the manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import math
import os
import shutil
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import orjson

from app import __version__
from app.client import Answer, Sink, Writer, exchange
from app.fleet.importer import MLFLOW
from app.fleet.manifest import FORMAT, FORMAT_VERSION
from app.fleet.mlflow_refs import MlflowRef, parse_ref
from app.fleet.upstream import TIMEOUT, CappedSink, Published, UpstreamError, check_upstream_url
from app.store import Store
from app.store.blobs import file_sha256
from app.store.imports import file_by_origin
from app.store.records import iso

REST = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MAX_JSON_BYTES = 4 << 20
MAX_FILES = 1000  # an sklearn model folder has five; a thousand is not a model
MAX_DEPTH = 8
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same folder always packs to the same digest


@dataclass(frozen=True)
class RegisteredVersion:
    """The version a ref names now."""

    ref: MlflowRef
    version: int
    source: str
    run_id: str
    description: str


class MlflowUpstream:
    def __init__(self, url: str, authorization: str | None, store: Store, max_bytes: int,
                 timeout: float = TIMEOUT, max_files: int = MAX_FILES) -> None:
        self.url = check_upstream_url(url)
        self.authorization = authorization  # the whole header value: "Bearer ..." or "Basic ..."
        self.store = store
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.timeout = timeout
        self.pulled = 0
        parts = urlsplit(self.url)
        self._host, self._port = parts.hostname or "", parts.port
        self._tls = parts.scheme == "mlflow+https"
        self._prefix = parts.path
        self._server = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        self._packed: dict[str, Path] = {}  # sha256 -> packed zip in the store's temp dir

    # -- HTTP -----------------------------------------------------------------------------

    def _get(self, path: str, query: dict[str, Any] | None, sink: Sink | None = None) -> Answer:
        target = self._prefix + path + ("?" + urlencode(query, doseq=True) if query else "")
        headers = {"Accept": "application/json"}
        if self.authorization:
            headers["Authorization"] = self.authorization
        try:
            return exchange(self._host, self._port, "GET", target, headers=headers,
                            timeout=self.timeout, sink=sink, tls=self._tls, limit=MAX_JSON_BYTES)
        except http.client.HTTPException as exc:
            raise UpstreamError(f"The MLflow server {self.url} broke off its answer to GET "
                                f"{path} ({type(exc).__name__}).") from exc
        except OSError as exc:
            raise UpstreamError(f"The MLflow server {self.url} could not be reached "
                                f"({exc.strerror or exc}).") from exc

    def _json(self, path: str, query: dict[str, Any], what: str) -> dict[str, Any]:
        answer = self._get(path, query)
        if answer.status != 200:
            raise self._refused(answer, what)
        if not isinstance(answer.body, dict):
            raise UpstreamError(f"The MLflow server {self.url} answered {what} with something "
                                "that is not a JSON object.")
        return answer.body

    def _refused(self, answer: Answer, what: str) -> UpstreamError:
        body = answer.body if isinstance(answer.body, dict) else {}
        said = str(body.get("message") or body.get("error_code") or "")[:300]
        hint = " Check the mirror's token or password file." if answer.status in (401, 403) \
            else ""
        return UpstreamError(f"The MLflow server {self.url} refused {what} with HTTP "
                             f"{answer.status}{': ' + said if said else '.'}{hint}")

    # -- resolve --------------------------------------------------------------------------

    def resolve(self, refs: list[str], etag: str | None) -> Published | None:
        found = [self._registered(parse_ref(text)) for text in refs]
        tag = _etag(self.url, found)
        if tag == etag:
            return None
        return self._publish(found, tag)

    def _registered(self, ref: MlflowRef) -> RegisteredVersion:
        if ref.alias is not None:
            body = self._json(f"{REST}/registered-models/alias",
                              {"name": ref.name, "alias": ref.alias}, f"the alias {ref.text}")
            entry = body.get("model_version")
        elif ref.stage is not None:
            body = self._json(f"{REST}/registered-models/get-latest-versions",
                              {"name": ref.name, "stages": [ref.stage]}, f"the stage {ref.text}")
            versions = body.get("model_versions") or []
            if not versions:
                raise UpstreamError(f"The MLflow server {self.url} has no version of "
                                    f"{ref.name!r} in stage {ref.stage}.")
            entry = versions[0]
        else:
            body = self._json(f"{REST}/model-versions/get",
                              {"name": ref.name, "version": str(ref.version)},
                              f"the version {ref.text}")
            entry = body.get("model_version")
        if not isinstance(entry, dict):
            raise UpstreamError(f"The MLflow server {self.url} answered {ref.text} without a "
                                "model_version.")
        status = str(entry.get("status") or "READY")
        if status != "READY":
            raise UpstreamError(f"Version {entry.get('version')} of {ref.name!r} on the MLflow "
                                f"server is {status}, not READY yet; the next sync tries again.")
        try:
            number = int(entry["version"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(f"The MLflow server {self.url} answered {ref.text} with no "
                                "version number.") from exc
        return RegisteredVersion(ref, number, str(entry.get("source") or ""),
                                 str(entry.get("run_id") or ""),
                                 str(entry.get("description") or "")[:10_000])

    def _publish(self, found: list[RegisteredVersion], tag: str) -> Published:
        models: dict[str, dict[str, Any]] = {}
        origins: dict[str, dict[str, Any]] = {}
        blobs: dict[str, int] = {}
        for registered in found:
            name = registered.ref.name
            model = models.setdefault(name, {"name": name, "aliases": {}, "versions": {}})
            if registered.ref.local_alias is not None:
                model["aliases"][registered.ref.local_alias] = registered.version
            if registered.version in model["versions"]:
                continue
            entry = self._version_entry(registered)
            model["versions"][registered.version] = entry
            blobs[entry["sha256"]] = entry["size"]
            origins[f"{name}@{registered.version}"] = {
                "uri": f"mlflow:{self._server}/{name}/{registered.version}",
                "run_id": registered.run_id, "source": registered.source}
        document = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "created_at": iso(time.time()), "blobs": blobs,
            "publisher": {"instance": self.url[:200], "app_version": f"mlflow ({__version__})",
                          "key": None},
            "models": [{**m, "versions": list(m["versions"].values())} for m in models.values()],
        }
        return Published(tag, orjson.dumps(document), None, kind=MLFLOW, origins=origins)

    def _version_entry(self, registered: RegisteredVersion) -> dict[str, Any]:
        entry: dict[str, Any] = {"version": registered.version, "format": "mlflow",
                                 "format_detail": "mlflow-sklearn", "source": "mlflow",
                                 "description": registered.description}
        known = file_by_origin(self.store, registered.ref.name, {
            "kind": MLFLOW, "upstream": self.url, "version": registered.version,
            "run_id": registered.run_id})
        if known is not None:  # brought before: its file is here, nothing to download
            entry["sha256"], entry["size"] = known
            return entry
        entry["sha256"], entry["size"] = self._download(registered)
        entry["metrics"], entry["params"] = self._run_data(registered.run_id)
        return entry

    def _run_data(self, run_id: str) -> tuple[dict[str, float], dict[str, str]]:
        """The run's last metric values and its params (none for a version without a run)."""
        if not run_id:
            return {}, {}
        data = self._json(f"{REST}/runs/get", {"run_id": run_id}, f"the run {run_id}")
        section = (data.get("run") or {}).get("data") or {}
        metrics: dict[str, float] = {}
        for m in section.get("metrics") or []:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                value = float(m["value"])
                if math.isfinite(value):
                    metrics[str(m["key"])[:250]] = value
        params = {str(p["key"])[:250]: str(p.get("value", ""))[:6000]
                  for p in section.get("params") or [] if isinstance(p, dict) and "key" in p}
        return metrics, params

    # -- download -------------------------------------------------------------------------

    def _download(self, registered: RegisteredVersion) -> tuple[str, int]:
        name, number = registered.ref.name, registered.version
        body = self._json(f"{REST}/model-versions/get-download-uri",
                          {"name": name, "version": str(number)},
                          f"the download location of {name} version {number}")
        root = self._artifact_root(str(body.get("artifact_uri") or registered.source))
        files = list(self._walk(root, "", 0))
        total = sum(size for _, size in files)
        if total > self.max_bytes:
            raise UpstreamError(f"{name} version {number} on the MLflow server holds {total} "
                                f"bytes, over this box's limit of {self.max_bytes} (setting "
                                "max_upload_bytes).", code="payload_too_large")
        out, temp = self.store.blobs.temp_file()
        try:
            with out:
                with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
                    for member, size in files:
                        self._download_file(zf, f"{root}/{member}", member, size)
                out.flush()  # the mirror's commit renames it into the blob store: durable first
                os.fsync(out.fileno())
            sha, size = file_sha256(temp), temp.stat().st_size
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        if sha in self._packed:  # two refs, one folder: keep one copy
            temp.unlink()
        else:
            self._packed[sha] = temp
        return sha, size

    def _artifact_root(self, uri: str) -> str:
        """The path of the model folder under the server's artifact proxy. Only this server's
        proxy is read (with this mirror's credentials); anything else is refused by name."""
        parts = urlsplit(uri)
        if parts.scheme == "mlflow-artifacts" and parts.netloc in ("", self._server):
            return parts.path.strip("/")
        if parts.scheme in ("http", "https") and parts.netloc == self._server:
            route = self._prefix + ARTIFACTS + "/"
            if parts.path.startswith(route):
                return parts.path[len(route):].strip("/")
        if parts.scheme == "runs":  # runs:/<run id>/<path>, as MLflow 1.x registered them
            run_id, _, rest = parts.path.strip("/").partition("/")
            run = self._json(f"{REST}/runs/get", {"run_id": run_id}, f"the run {run_id}")
            base = str(((run.get("run") or {}).get("info") or {}).get("artifact_uri") or "")
            if base and not base.startswith("runs:"):
                return f"{self._artifact_root(base)}/{rest}".strip("/")
        raise UpstreamError(
            f"The MLflow server keeps this model at {uri[:200]!r}, which this box does not read: "
            "it downloads models through the server's artifact proxy (`mlflow server "
            "--serve-artifacts`, the default since MLflow 2.0), as mlflow-artifacts:/ paths.",
            code="unsupported_upstream")

    def _walk(self, root: str, folder: str, depth: int) -> Iterator[tuple[str, int]]:
        """(member name, size) of every file under `root`, each name checked, the count
        capped."""
        if depth > MAX_DEPTH:
            raise UpstreamError(f"The model folder on the MLflow server nests deeper than "
                                f"{MAX_DEPTH} levels; it is not an MLflow model.")
        listed = self._json(ARTIFACTS, {"path": f"{root}/{folder}".rstrip("/")},
                            f"the listing of {folder or 'the model folder'}")
        count = 0
        for item in listed.get("files") or []:
            if not isinstance(item, dict):
                raise UpstreamError(f"The MLflow server {self.url} listed the model folder "
                                    "with something that is not a file entry.")
            member = check_segment(str(item.get("path", "")), folder)
            if item.get("is_dir"):
                yield from self._walk(root, member, depth + 1)
                continue
            count += 1
            if count > self.max_files:
                raise UpstreamError(f"The model folder on the MLflow server has more than "
                                    f"{self.max_files} files; it is not an MLflow model.",
                                    code="payload_too_large")
            try:
                size = int(item.get("file_size") or 0)
            except (TypeError, ValueError):
                size = -1
            if size < 0:
                raise UpstreamError(f"The MLflow server lists {member!r} with no size.")
            yield member, size

    def _download_file(self, zf: zipfile.ZipFile, path: str, member: str, size: int) -> None:
        info = zipfile.ZipInfo(member, _ZIP_TIME)
        info.external_attr = 0o644 << 16
        what = f"the file {member!r}"
        with zf.open(info, "w", force_zip64=True) as target:

            def choose(status: int, _: http.client.HTTPMessage) -> Writer:
                if status != 200:
                    raise UpstreamError(f"The MLflow server answered {what} with HTTP "
                                        f"{status}.")
                return CappedSink(target, size, what, self._count)

            answer = self._get(f"{ARTIFACTS}/{quote(path)}", None, choose)
            if answer.status != 200:
                raise self._refused(answer, what)
            if answer.body != size:
                raise UpstreamError(f"The MLflow server sent {answer.body} bytes of {what}; "
                                    f"its listing said {size}.")

    def _count(self, size: int) -> None:
        self.pulled += size

    # -- the packed file ------------------------------------------------------------------

    def fetch(self, sha256: str, size: int, part: Path) -> None:
        packed = self._packed.pop(sha256, None)
        if packed is None:
            raise UpstreamError(f"The MLflow model {sha256[:12]}... was not packed by this "
                                "sync.")
        shutil.move(packed, part)

    def close(self) -> None:
        for packed in self._packed.values():
            packed.unlink(missing_ok=True)
        self._packed = {}


def check_segment(segment: str, folder: str) -> str:
    """`folder/segment`, once `segment` is one plain name: MLflow's listing names each entry by
    its base name, and a name that could climb out of the folder is refused, never cleaned."""
    if segment in ("", ".", "..") or any(c in segment for c in "/\\\x00") or \
            any(ord(c) < 32 for c in segment):
        raise UpstreamError(f"The MLflow server lists a file named {segment[:100]!r} in the "
                            "model folder; names must be plain file names inside it.",
                            code="unsafe_model")
    return f"{folder}/{segment}" if folder else segment


def _etag(url: str, found: list[RegisteredVersion]) -> str:
    """Changes when any ref names another version, run or source."""
    seen = [(r.ref.text, r.version, r.run_id, r.source) for r in found]
    return "mlflow-" + hashlib.sha256(orjson.dumps([url, seen])).hexdigest()[:32]
