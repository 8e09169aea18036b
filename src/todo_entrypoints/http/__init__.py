"""The FastAPI HTTP API: `create_app()` builds it from a container."""
