"""Models: the list with search and tag filters, one model's versions and aliases, promote,
roll back, remove an alias, delete a version. Reads and writes go straight to the store, with the
same name checks the JSON API applies."""

from __future__ import annotations

from flask import Blueprint, redirect, request, url_for
from werkzeug.wrappers import Response

from app.errors import BadRequest, ModelDepotError
from app.registry.context import registry
from app.registry.dashboard.pictures import evaluation_charts, metric_history
from app.registry.dashboard.traffic import model_traffic
from app.registry.dashboard.web import form_text, form_version, go, page
from app.registry.models_api import query_int, tag_filters
from app.store.names import check_alias, check_name
from app.store.records import VersionRecord

bp = Blueprint("models", __name__)
PAGE_SIZE = 50
MAX_QUERY = 256
DEFAULT_ALIAS = "production"


@bp.get("/")
def index() -> Response:
    q = request.args.get("q", "").strip()
    if len(q) > MAX_QUERY:
        raise BadRequest(f"The search text is limited to {MAX_QUERY} characters.")
    raw_tags = request.args.getlist("tag")
    if "" in (t.strip() for t in raw_tags) or ("q" in request.args and not q):
        # The search form sends its empty fields too: drop them, for a clean, shareable URL.
        kept = [t for t in raw_tags if t.strip()]
        return redirect(url_for(".index", q=q or None, tag=kept or None), 303)
    tags = tag_filters()
    records, next_token = registry().store.list_models(
        q=q or None, tags=tags, limit=query_int("limit") or PAGE_SIZE,
        page_token=request.args.get("page_token"),
    )
    next_url = None
    if next_token:
        next_url = url_for(".index", q=q or None, tag=request.args.getlist("tag"),
                           page_token=next_token)
    return page("models.html", models=records, q=q, tags=[f"{k}:{v}" for k, v in tags],
                next_url=next_url, nav="models")


@bp.get("/models/<name>")
def show(name: str) -> Response:
    store = registry().store
    model = store.get_model(name)
    versions, next_token = store.list_versions(
        name, limit=PAGE_SIZE, page_token=request.args.get("page_token")
    )
    next_url = url_for(".show", name=name, page_token=next_token) if next_token else None
    traffic, traffic_note = model_traffic(name)
    return page(
        "model.html",
        model=model,
        versions=versions,
        rollbacks=rollback_targets(model.aliases, versions),
        history=metric_history(versions),
        traffic=traffic,
        traffic_note=traffic_note,
        next_url=next_url,
        default_alias=DEFAULT_ALIAS,
        nav="models",
    )


@bp.get("/models/<name>/versions/<int:version>")
def version(name: str, version: int) -> Response:
    """One version with its evaluation report drawn."""
    store = registry().store
    record = store.get_version(name, version)
    return page("version.html", version=record, evaluation=evaluation_charts(record.evaluation),
                datasets=store.datasets.list_datasets(), nav="models")


@bp.post("/models/<name>/versions/<int:version>/evaluate")
def evaluate(name: str, version: int) -> Response:
    """Queue an "evaluate" job (app/training/evaluate.py) and follow it on its job page."""
    from app.registry.services import submit_job

    back = url_for(".version", name=name, version=version)
    try:
        job = submit_job({"kind": "evaluate", "model": name, "version": version,
                          "dataset": form_text("dataset"), "target": form_text("target")})
    except ModelDepotError as exc:
        return go(back, error=exc.message)
    return go(url_for("dashboard.jobs.show", job_id=job.id),
              ok=f"Evaluating {name} v{version}: the report appears on the version's page.")


def rollback_targets(aliases: dict[str, int], versions: list[VersionRecord]) -> dict[str, int]:
    """For each alias, the newest ready version older than the one it points at."""
    ready = sorted((v.version for v in versions if v.status == "ready"), reverse=True)
    targets = {}
    for alias, current in aliases.items():
        older = next((v for v in ready if v < current), None)
        if older is not None:
            targets[alias] = older
    return targets


def _model_url(name: str) -> str:
    return url_for(".show", name=name)


@bp.post("/models/<name>/aliases")
def set_alias(name: str) -> Response:
    check_name(name)
    try:
        alias = check_alias(form_text("alias") or DEFAULT_ALIAS)
        version = form_version()
        registry().store.set_alias(name, alias, version)
    except ModelDepotError as exc:
        return go(_model_url(name), error=exc.message)
    return go(_model_url(name), ok=f"{alias} now points at version {version}.")


@bp.post("/models/<name>/aliases/<alias>/delete")
def delete_alias(name: str, alias: str) -> Response:
    check_name(name)
    try:
        registry().store.delete_alias(name, alias)
    except ModelDepotError as exc:
        return go(_model_url(name), error=exc.message)
    return go(_model_url(name), ok=f"Alias {alias} removed.")


@bp.post("/models/<name>/versions/<int:version>/delete")
def delete_version(name: str, version: int) -> Response:
    check_name(name)
    try:
        registry().store.delete_version(name, version)
    except ModelDepotError as exc:
        return go(_model_url(name), error=exc.message)
    return go(_model_url(name), ok=f"Version {version} deleted.")
