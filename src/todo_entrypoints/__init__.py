"""Entrypoints: the HTTP app, the composition root and the `todo-api` command."""
