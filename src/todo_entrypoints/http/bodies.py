"""Reading JSON request bodies ourselves: 415 for other media types, 400 for broken JSON,
422 (naming each field) for JSON of the wrong shape. The size limit is enforced below, in
the body-limit middleware, before a byte reaches here."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from todo_entrypoints.http.problems import HttpProblem

__all__ = ["JSON_MEDIA_TYPES", "read_json", "read_optional_json"]

Model = TypeVar("Model", bound=BaseModel)
JSON_MEDIA_TYPES = ("application/json", "application/merge-patch+json")
_EMPTY = object()


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in JSON_MEDIA_TYPES or (media.startswith("application/") and media.endswith("+json"))


async def _parse(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return _EMPTY
    if not _is_json(request.headers.get("content-type", "")):
        raise HttpProblem(415, "unsupported_media_type", "The request body must be application/json.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:  # the slow path accepts what orjson refuses but JSON allows (e.g. escaped lone surrogates)
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise HttpProblem(400, "malformed_request", "The request body is not valid JSON.") from None


async def read_json(request: Request, model: type[Model]) -> Model:
    """The body as `model`; a missing body is a 422 naming it."""
    body = await read_optional_json(request, model)
    if body is None:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "a JSON body is required", "type": "missing"}]
        )
    return body


async def read_optional_json(request: Request, model: type[Model]) -> Model | None:
    """The body as `model`, or None when there is no body at all."""
    data = await _parse(request)
    if data is _EMPTY:
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_input=False)) from None
