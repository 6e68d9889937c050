"""What a mirror of an MLflow Model Registry follows: `name@alias`, `name@stage:Production` or
`name@3`, and the local alias each one moves (docs/mirrors.md, "From an MLflow registry").

Checked when the mirror is added (app/registry/mirrors_api.py) and again at each sync, with no
network: the local model takes the MLflow name, so it must be a valid ModelDepot name.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import BadRequest, ModelDepotError
from app.store.names import check_alias, check_name

# MLflow's stages (deprecated since MLflow 2.9, still answered by 3.x servers); "None" names no
# stage at all, so it cannot be followed.
STAGES = {"staging": "Staging", "production": "Production", "archived": "Archived"}
STAGE_PREFIX = "stage:"


@dataclass(frozen=True)
class MlflowRef:
    text: str  # as the user wrote it
    name: str
    alias: str | None = None  # an MLflow alias (MLflow 2.3 and later)
    stage: str | None = None  # Staging, Production or Archived (older servers)
    version: int | None = None  # a fixed version: nothing moves

    @property
    def local_alias(self) -> str | None:
        """The alias this box moves: the MLflow alias itself, or the stage in lower case
        (`churn@stage:Production` serves as `churn@production`); none for a fixed version."""
        if self.alias is not None:
            return self.alias
        return self.stage.lower() if self.stage is not None else None


def parse_ref(text: str) -> MlflowRef:
    name, sep, ref = text.partition("@")
    try:
        check_name(name, "MLflow model name")
    except ModelDepotError as exc:
        raise BadRequest(f"Field 'models': {exc.message} The MLflow model keeps its name on "
                         "this box, so it must be a ModelDepot name too.",
                         code="invalid_models") from exc
    if not sep or not ref:
        raise BadRequest(f"Field 'models': {text[:80]!r} names no alias; write name@alias, "
                         "name@stage:Production or name@3.", code="invalid_models")
    if ref.lower().startswith(STAGE_PREFIX):
        stage = STAGES.get(ref[len(STAGE_PREFIX):].lower())
        if stage is None:
            raise BadRequest(f"Field 'models': {text[:80]!r} names no MLflow stage; the stages "
                             f"are {', '.join(STAGES.values())}.", code="invalid_models")
        return MlflowRef(text, name, stage=stage)
    if ref.isdigit():
        if int(ref) < 1:
            raise BadRequest(f"Field 'models': {text[:80]!r}: MLflow versions start at 1.",
                             code="invalid_models")
        return MlflowRef(text, name, version=int(ref))
    try:
        check_alias(ref)
    except ModelDepotError as exc:
        raise BadRequest(f"Field 'models': {exc.message} (in {text[:80]!r}; 'latest' is not "
                         "followed: name an alias or a stage).", code="invalid_models") from exc
    return MlflowRef(text, name, alias=ref)


def check_mlflow_refs(refs: list[str]) -> list[str]:
    """The refs, each parsed, no two moving the same local alias."""
    moved: dict[tuple[str, str], str] = {}
    for text in refs:
        ref = parse_ref(text)
        alias = ref.local_alias
        if alias is None:
            continue
        other = moved.setdefault((ref.name, alias), text)
        if other != text:
            raise BadRequest(f"Field 'models': {other!r} and {text!r} would both move "
                             f"{ref.name}@{alias} on this box; follow one of them.",
                             code="invalid_models")
    return list(dict.fromkeys(refs))
