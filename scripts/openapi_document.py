"""Prints the OpenAPI document exactly as clients/typescript is generated from: the app with
development defaults, whatever .env or environment the caller has (so the file is stable)."""

from __future__ import annotations

import json
import os
import sys
import tempfile

CLEAN = {"ENVIRONMENT": "development", "DATABASE_URL": "memory://", "LIST_RESPONSE_SHAPE": "array"}


def main() -> None:
    for name in list(os.environ):
        if name.startswith(("AUTH_", "BETTER_AUTH", "JWT_", "DOCS_", "MCP_", "PUBLIC_URL", "RATE_LIMIT")):
            del os.environ[name]
    os.environ.update(CLEAN)
    os.chdir(tempfile.mkdtemp())  # no .env from the working directory
    from todo_entrypoints.http.app import create_app
    from todo_entrypoints.settings import Settings

    document = create_app(settings=Settings()).openapi()
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
