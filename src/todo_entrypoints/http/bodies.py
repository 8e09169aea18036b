"""The one thing FastAPI does not do for our request bodies: refuse a body that is not JSON.

Routes declare their body models, so FastAPI parses (broken JSON → 400 through the problem
handlers, nesting too deep to parse → 400), validates (422 naming each field, unknown ones
too) and documents them. The size limit (413) is enforced earlier, by the body-limit
middleware. Without this dependency a body sent as, say, `text/plain` would reach validation
as raw bytes and come back as a confusing 422; SPEC §6 wants 415. Declare it after the caller
(`RateLimitedOwnerDep`) so a request without a token is still answered 401 first.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from todo_entrypoints.http.problems import HttpProblem

__all__ = ["JSON_MEDIA_TYPES", "JsonOnly"]

JSON_MEDIA_TYPES = ("application/json", "application/merge-patch+json")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in JSON_MEDIA_TYPES or (media.startswith("application/") and media.endswith("+json"))


async def _json_only(request: Request) -> None:
    if await request.body() and not _is_json(request.headers.get("content-type", "")):
        raise HttpProblem(415, "unsupported_media_type", "The request body must be application/json.")


JsonOnly = Annotated[None, Depends(_json_only)]
