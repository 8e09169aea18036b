"""Error responses in the OpenAPI document: every one is problem+json (`ERRORS(…)`, declared by
the routes and, for the statuses any route can answer, by the router), so FastAPI never adds
its default 422 shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from todo_entrypoints.http.problems import PROBLEM_JSON, TITLES

__all__ = ["ERRORS", "Problem", "install_problem_schema", "merge_patch_too"]

_REF = "#/components/schemas/{model}"


class FieldErrorOut(BaseModel):
    field: str
    message: str
    code: str


class ErrorOut(BaseModel):
    code: str
    message: str


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
    message: str = Field(description="= detail, for clients that read `message`")
    error: ErrorOut = Field(description="{code, message}, for clients that read `error`")


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": TITLES.get(status, "Error"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": _REF.format(model="Problem")}}},
    }


def ERRORS(*statuses: int) -> dict[int | str, dict[str, Any]]:  # noqa: N802  (reads like a constant)
    return {status: _problem(status) for status in statuses}


def merge_patch_too(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a PATCH: the declared JSON body is accepted as merge-patch too."""
    schema = {"schema": {"$ref": _REF.format(model=model.__name__)}}
    return {"requestBody": {"content": {"application/merge-patch+json": schema}}}


def install_problem_schema(app: FastAPI) -> None:
    """Adds the Problem model to the document's components. Error responses name it under
    `application/problem+json`, which FastAPI's `responses={…: {"model": …}}` cannot say (it
    files every model under the route's own media type, application/json)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()  # FastAPI keeps it in app.openapi_schema
            _, defs = models_json_schema([(Problem, "validation")], ref_template=_REF)
            document.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
            return document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
