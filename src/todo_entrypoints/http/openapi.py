"""Keeps the OpenAPI document truthful: problem+json error responses with their real status
codes, request bodies we parse ourselves, and no trace of FastAPI's default 422 shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from todo_entrypoints.http.problems import PROBLEM_JSON, TITLES

__all__ = ["ERRORS", "Problem", "body_schema", "install_openapi"]

_REF = "#/components/schemas/{model}"


class FieldErrorOut(BaseModel):
    field: str
    message: str
    code: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error response carries them."""

    type: str
    title: str
    status: int
    detail: str = Field(description="human-readable, always a string")
    instance: str
    code: str
    request_id: str
    errors: list[FieldErrorOut] | None = None
    retry_after: int | None = Field(None, description="seconds, on 429")


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": TITLES.get(status, "Error"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": _REF.format(model="Problem")}}},
    }


def ERRORS(*statuses: int) -> dict[int | str, dict[str, Any]]:  # noqa: N802  (reads like a constant)
    return {status: _problem(status) for status in statuses}


def body_schema(
    model: type[BaseModel], *, merge_patch: bool = False, required: bool = True
) -> dict[str, Any]:
    schema = {"schema": {"$ref": _REF.format(model=model.__name__)}}
    content = {"application/json": schema}
    if merge_patch:
        content["application/merge-patch+json"] = schema
    return {"requestBody": {"required": required, "content": content}}


def install_openapi(app: FastAPI, body_models: list[type[BaseModel]], common_errors: tuple[int, ...]) -> None:
    """Replaces `app.openapi` with a generator that adds our models and error responses."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        models: list[type[BaseModel]] = [*body_models, Problem]
        mode: JsonSchemaMode = "validation"
        _, defs = models_json_schema([(m, mode) for m in models], ref_template=_REF)
        components.update(defs.get("$defs", {}))
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses and "HTTPValidationError" in str(responses["422"]):
                    responses["422"] = _problem(422)
                if path.startswith("/api"):
                    for status in common_errors:
                        responses.setdefault(str(status), _problem(status))
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
