"""MCP (SPEC §14): the tools in-process with the SDK's client, then over real HTTP against a
`todo-api serve` process with the SDK's Streamable HTTP client, over stdio through
`todo-api mcp`, and with a client of the mcp 1.x line from its own virtual environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from tests.integration.http_support import SECRET, make_settings
from tests.integration.servers import TODO_API, running_server
from todo_adapters.auth import mint_token
from todo_adapters.sql import SqlStore
from todo_domain import TaskService
from todo_entrypoints.container import Container, provide, shut_down
from todo_entrypoints.mcp_tools import TaskTools, acting_for

TOOLS = {
    "add_task",
    "list_tasks",
    "get_task",
    "update_task",
    "complete_task",
    "reopen_task",
    "delete_task",
    "list_tags",
}


@asynccontextmanager
async def tools_for(user: str, container: Container) -> AsyncIterator[Client]:
    """The SDK's client, in-process, with the server acting for `user` (as stdio does)."""
    acting_for(user)
    async with Client(TaskTools(lambda: provide(container.adapters))) as client:
        yield client


@pytest.fixture
async def container() -> AsyncIterator[Container]:
    container = Container(settings=make_settings())
    yield container
    await shut_down(container)


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


def refused(result: CallToolResult, code: str) -> dict[str, Any]:
    assert result.is_error, result.structured_content
    assert result.structured_content is not None
    error: dict[str, Any] = result.structured_content["error"]
    assert error["code"] == code, error
    text = result.content[0]
    assert getattr(text, "text", "").startswith(code)
    return error


# -- the tools, in-process ---------------------------------------------------------------------


async def test_the_eight_tools_with_schemas_and_annotations(container: Container) -> None:
    async with tools_for("alice", container) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for name in ("list_tasks", "get_task", "list_tags"):
        reading = tools[name].annotations
        assert reading is not None
        assert reading.read_only_hint is True
    delete = tools["delete_task"].annotations
    assert delete is not None
    assert delete.destructive_hint is True
    for name in ("get_task", "complete_task", "reopen_task", "update_task", "delete_task"):
        hints = tools[name].annotations
        assert hints is not None
        assert hints.idempotent_hint is True
    add = tools["add_task"].input_schema["properties"]
    assert "RFC 3339" in add["due_date"]["description"]
    assert add["priority"]["anyOf"][0]["enum"] == ["low", "medium", "high"]
    assert tools["list_tasks"].input_schema["properties"]["limit"]["maximum"] == 100
    for tool in tools.values():
        assert tool.output_schema is not None
        assert tool.description


async def test_a_task_through_every_tool(container: Container) -> None:
    async with tools_for("alice", container) as client:
        added = ok(
            await client.call_tool("add_task", {"title": "Buy milk", "tags": ["Home"], "priority": "high"})
        )
        assert added["status"] == "created"
        assert added["title"] == "Buy milk"
        task_id = added["task_id"]
        assert added["task"]["tags"] == ["home"]
        assert ok(await client.call_tool("get_task", {"task_id": task_id}))["task"]["id"] == task_id
        updated = ok(
            await client.call_tool(
                "update_task", {"task_id": task_id, "description": "2 l", "due_date": "2026-12-24"}
            )
        )
        assert updated["status"] == "updated"
        assert updated["task"]["due_date"] == "2026-12-24T00:00:00Z"
        cleared = ok(
            await client.call_tool("update_task", {"task_id": task_id, "clear": ["due_date", "description"]})
        )
        assert cleared["task"]["due_date"] is None
        assert cleared["task"]["description"] is None
        assert ok(await client.call_tool("complete_task", {"task_id": task_id}))["status"] == "completed"
        assert ok(await client.call_tool("reopen_task", {"task_id": task_id}))["task"]["completed"] is False
        listed = ok(await client.call_tool("list_tasks", {"status": "active"}))
        assert [t["id"] for t in listed["tasks"]] == [task_id]
        assert listed["total"] == 1
        assert listed["next_cursor"] is None
        assert ok(await client.call_tool("list_tags", {}))["tags"] == [
            {"name": "home", "open": 1, "total": 1}
        ]
        deleted = ok(await client.call_tool("delete_task", {"task_id": task_id}))
        assert deleted == {"task_id": task_id, "status": "deleted", "title": "Buy milk"}
        refused(await client.call_tool("get_task", {"task_id": task_id}), "not_found")


async def test_completing_a_recurring_task_reschedules_it(container: Container) -> None:
    async with tools_for("alice", container) as client:
        task = ok(
            await client.call_tool(
                "add_task", {"title": "standup", "due_date": "2026-12-01T09:00:00Z", "recurrence": "daily"}
            )
        )
        done = ok(await client.call_tool("complete_task", {"task_id": task["task_id"]}))
    assert done["status"] == "rescheduled"
    assert done["task"]["completed"] is False
    assert done["task"]["due_date"] > "2026-12-01T09:00:00Z"


async def test_add_task_takes_a_parent_and_a_time_zone(container: Container) -> None:
    async with tools_for("alice", container) as client:
        parent = ok(await client.call_tool("add_task", {"title": "move house"}))
        child = ok(
            await client.call_tool(
                "add_task",
                {"title": "book a van", "parent_id": parent["task_id"], "time_zone": "Europe/Paris"},
            )
        )
        orphan = await client.call_tool("add_task", {"title": "x", "parent_id": str(uuid.uuid4())})
        bad_zone = await client.call_tool("add_task", {"title": "x", "time_zone": "Mars/Olympus"})
    assert child["task"]["parent_id"] == parent["task_id"]
    assert child["task"]["time_zone"] == "Europe/Paris"
    assert {e["field"] for e in refused(orphan, "validation_error")["errors"]} == {"parent_id"}
    assert {e["field"] for e in refused(bad_zone, "validation_error")["errors"]} == {"time_zone"}


async def test_update_task_moves_a_task_and_sets_its_time_zone(container: Container) -> None:
    async with tools_for("alice", container) as client:
        parent = ok(await client.call_tool("add_task", {"title": "trip"}))["task_id"]
        task_id = ok(await client.call_tool("add_task", {"title": "pack"}))["task_id"]
        moved = ok(
            await client.call_tool(
                "update_task", {"task_id": task_id, "parent_id": parent, "time_zone": "Asia/Tokyo"}
            )
        )
        back = ok(
            await client.call_tool("update_task", {"task_id": task_id, "clear": ["parent_id", "time_zone"]})
        )
        under = ok(await client.call_tool("update_task", {"task_id": parent, "parent_id": task_id}))
        cycle = await client.call_tool("update_task", {"task_id": task_id, "parent_id": parent})
    assert (moved["task"]["parent_id"], moved["task"]["time_zone"]) == (parent, "Asia/Tokyo")
    assert (back["task"]["parent_id"], back["task"]["time_zone"]) == (None, None)
    assert under["task"]["parent_id"] == task_id  # the other way round now
    assert {e["field"] for e in refused(cycle, "validation_error")["errors"]} == {"parent_id"}


async def test_an_unknown_tool_is_a_structured_not_found(container: Container) -> None:
    async with tools_for("alice", container) as client:
        error = refused(await client.call_tool("add_tasks", {"title": "x"}), "not_found")
    assert "add_task" in error["message"]


async def test_pages_follow_next_cursor(container: Container) -> None:
    async with tools_for("alice", container) as client:
        for i in range(3):
            ok(await client.call_tool("add_task", {"title": f"t{i}"}))
        first = ok(await client.call_tool("list_tasks", {"limit": 2}))
        assert first["total"] == 3
        second = ok(await client.call_tool("list_tasks", {"limit": 2, "cursor": first["next_cursor"]}))
    assert len(first["tasks"]) + len(second["tasks"]) == 3
    assert second["next_cursor"] is None


async def test_a_foreign_user_id_is_forbidden_and_changes_nothing(container: Container) -> None:
    async with tools_for("alice", container) as client:
        task_id = ok(await client.call_tool("add_task", {"title": "mine"}))["task_id"]
        refused(await client.call_tool("add_task", {"title": "theirs", "user_id": "bob"}), "forbidden")
        refused(await client.call_tool("delete_task", {"task_id": task_id, "user_id": "bob"}), "forbidden")
        assert ok(await client.call_tool("get_task", {"task_id": task_id, "user_id": "alice"}))["task"]
        assert ok(await client.call_tool("list_tasks", {}))["total"] == 1
    service = (await provide(container.adapters)).service
    assert (await service.list("bob")).total == 0


async def test_another_users_task_is_not_found(container: Container) -> None:
    async with tools_for("alice", container) as client:
        task_id = ok(await client.call_tool("add_task", {"title": "alice's"}))["task_id"]
    async with tools_for("bob", container) as client:
        refused(await client.call_tool("get_task", {"task_id": task_id}), "not_found")
        refused(await client.call_tool("complete_task", {"task_id": task_id}), "not_found")
        refused(await client.call_tool("get_task", {"task_id": "not-a-uuid"}), "not_found")
    service = (await provide(container.adapters)).service
    assert (await service.list("alice")).items[0].completed is False


async def test_the_same_idempotency_key_twice_makes_one_task(container: Container) -> None:
    async with tools_for("alice", container) as client:
        call = {"title": "once", "idempotency_key": "agent-retry-1"}
        first = ok(await client.call_tool("add_task", call))
        second = ok(await client.call_tool("add_task", call))
        assert first["task_id"] == second["task_id"]
        reused = refused(
            await client.call_tool("add_task", {**call, "title": "other"}), "idempotency_key_reused"
        )
        assert reused["message"]
        assert ok(await client.call_tool("list_tasks", {}))["total"] == 1


@pytest.mark.parametrize(
    ("arguments", "fields"),
    [
        ({"title": ""}, {"title"}),
        ({"title": "x", "priority": "urgent"}, {"priority"}),
        ({"title": "x", "due_date": "next tuesday"}, {"due_date"}),
        ({"title": "x", "recurrence": "daily"}, {"recurrence"}),
        ({"title": "x" * 300, "tags": ["a" * 60]}, {"title", "tags"}),
        ({"title": "x", "idempotency_key": "has space"}, {"idempotency_key"}),
        ({}, {"title"}),
    ],
)
async def test_validation_errors_name_the_fields(
    container: Container, arguments: dict[str, Any], fields: set[str]
) -> None:
    async with tools_for("alice", container) as client:
        error = refused(await client.call_tool("add_task", arguments), "validation_error")
    assert {e["field"].split(".")[0] for e in error["errors"]} == fields


async def test_list_and_update_arguments_are_validated(container: Container) -> None:
    async with tools_for("alice", container) as client:
        error = refused(await client.call_tool("list_tasks", {"limit": 500}), "validation_error")
        assert {e["field"] for e in error["errors"]} == {"limit"}
        error = refused(await client.call_tool("list_tasks", {"sort": "colour"}), "validation_error")
        assert {e["field"] for e in error["errors"]} == {"sort"}
        task_id = ok(await client.call_tool("add_task", {"title": "t"}))["task_id"]
        both = {"task_id": task_id, "due_date": "2026-12-24", "clear": ["due_date"]}
        assert (
            refused(await client.call_tool("update_task", both), "validation_error")["errors"][0]["field"]
            == "due_date"
        )
        stale = {"task_id": task_id, "title": "u", "expected_version": 7}
        refused(await client.call_tool("update_task", stale), "version_conflict")


async def test_tool_calls_are_rate_limited_as_reads_and_writes() -> None:
    container = Container(
        settings=make_settings(
            rate_limit_enabled=True, rate_limit_write="2/minute", rate_limit_read="3/minute"
        )
    )
    try:
        async with tools_for("alice", container) as client:
            for _ in range(2):
                ok(await client.call_tool("add_task", {"title": "t"}))
            limited = refused(await client.call_tool("add_task", {"title": "t"}), "rate_limited")
            assert limited["retry_after"] >= 1
            for _ in range(3):
                ok(await client.call_tool("list_tags", {}))
            refused(await client.call_tool("list_tasks", {}), "rate_limited")
        assert (await (await provide(container.adapters)).service.list("alice")).total == 2
    finally:
        await shut_down(container)


# -- over real HTTP ------------------------------------------------------------------------------

ISSUER = "https://auth.example.test"


def _token(user: str) -> str:
    return mint_token(SECRET, user, issuer=ISSUER)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    database = tmp_path_factory.mktemp("mcp") / "todo.db"
    env = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": f"sqlite:///{database}",
        "AUTH_JWT_SECRET": SECRET,
        "AUTH_ISSUER": ISSUER,
        "RATE_LIMIT_ENABLED": "false",
        "CORS_ORIGINS": "http://localhost:3000",
        "PUBLIC_URL": "https://tasks.example.test",
    }
    with running_server(env) as base:
        yield base


@asynccontextmanager
async def http_client(base: str, user: str, versions: list[str] | None = None) -> AsyncIterator[Client]:
    """The SDK's Streamable HTTP client; `versions` collects the protocol version of each POST."""
    headers = {"Authorization": f"Bearer {_token(user)}"}

    async def seen(request: httpx2.Request) -> None:
        if versions is not None:
            versions.append(request.headers.get("mcp-protocol-version", ""))

    async with (
        httpx2.AsyncClient(headers=headers, event_hooks={"request": [seen]}) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client,
    ):
        yield client


def test_no_token_is_401_with_the_resource_metadata(server: str) -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    response = httpx.post(
        f"{server}/mcp", json=call, headers={"Accept": "application/json, text/event-stream"}
    )
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    metadata_url = "https://tasks.example.test/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{metadata_url}"' in challenge
    bad = httpx.post(f"{server}/mcp", json=call, headers={"Authorization": "Bearer forged"})
    assert bad.status_code == 401
    metadata = httpx.get(f"{server}/.well-known/oauth-protected-resource/mcp").json()
    assert metadata["resource"] == "https://tasks.example.test/mcp"
    assert metadata["authorization_servers"] == [ISSUER]


async def test_the_sdk_client_over_streamable_http(server: str) -> None:
    versions: list[str] = []
    async with http_client(server, "carol", versions) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        task_id = ok(await client.call_tool("add_task", {"title": "over http", "idempotency_key": "k-1"}))[
            "task_id"
        ]
        again = ok(await client.call_tool("add_task", {"title": "over http", "idempotency_key": "k-1"}))
        assert again["task_id"] == task_id
        refused(await client.call_tool("add_task", {"title": "x", "user_id": "dave"}), "forbidden")
    async with http_client(server, "dave") as client:
        refused(await client.call_tool("get_task", {"task_id": task_id}), "not_found")
        assert ok(await client.call_tool("list_tasks", {}))["total"] == 0
    async with httpx.AsyncClient() as http:
        rest = await http.get(f"{server}/api/tasks", headers={"Authorization": f"Bearer {_token('carol')}"})
    assert [t["id"] for t in rest.json()] == [task_id]  # one store, one use case layer
    # The current SDK speaks the per-request envelope of 2026-07-28 (no initialize, no session).
    assert set(versions) == {"2026-07-28"}


@pytest.mark.parametrize("era", ["2026-07-28", "2025-06-18"])
def test_one_self_contained_post_calls_a_tool_in_either_protocol_era(server: str, era: str) -> None:
    """What the benchmark sends: a `tools/call` with no session, as each era spells it."""
    headers = {"Authorization": f"Bearer {_token('hank')}", "Accept": "application/json, text/event-stream"}
    params: dict[str, Any] = {"name": "add_task", "arguments": {"title": f"one post, {era}"}}
    headers["Mcp-Protocol-Version"] = era
    if era == "2026-07-28":
        headers |= {"Mcp-Method": "tools/call", "Mcp-Name": "add_task"}
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": era,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
    answer = httpx.post(f"{server}/mcp", json=call, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert "mcp-session-id" not in answer.headers
    result = answer.json()["result"]
    assert result["isError"] is False
    assert result["structuredContent"]["task"]["title"] == f"one post, {era}"


def test_browser_clients_pass_cors(server: str) -> None:
    preflight = httpx.options(
        f"{server}/mcp",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, "
            "mcp-protocol-version, mcp-session-id, mcp-method, mcp-name",
        },
    )
    assert preflight.status_code == 200
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for header in ("mcp-protocol-version", "mcp-session-id", "mcp-method", "mcp-name"):
        assert header in allowed
    answer = httpx.post(
        f"{server}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Origin": "http://localhost:3000", "Accept": "application/json, text/event-stream"},
    )
    assert answer.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "www-authenticate" in answer.headers["access-control-expose-headers"].lower()


# -- stdio ---------------------------------------------------------------------------------------


async def test_todo_api_mcp_over_stdio(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'stdio.db'}"
    env = {**os.environ, "ENVIRONMENT": "development", "DATABASE_URL": database, "AUTH_JWT_SECRET": SECRET}
    for who in (["--user", "erin"], ["--token", mint_token(SECRET, "erin")]):
        parameters = StdioServerParameters(command=str(TODO_API), args=["mcp", *who], env=env)
        async with Client(parameters) as client:
            added = ok(await client.call_tool("add_task", {"title": f"from stdio {who[0]}"}))
            refused(await client.call_tool("list_tasks", {"user_id": "frank"}), "forbidden")
        assert added["task"]["user_id"] == "erin"
    store = SqlStore.from_url(database)
    try:
        assert (await TaskService(store).list("erin")).total == 2
    finally:
        await store.dispose()


def test_todo_api_mcp_refuses_a_bad_token_and_user_in_production(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "AUTH_JWT_SECRET": SECRET}
    forged = subprocess.run(
        [str(TODO_API), "mcp", "--token", "forged"], env=env, capture_output=True, text=True, timeout=60
    )
    assert forged.returncode != 0
    assert "not valid" in forged.stderr
    production = subprocess.run(
        [str(TODO_API), "mcp", "--user", "x"],
        env={**env, "ENVIRONMENT": "production"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert production.returncode != 0
    assert "--token" in production.stderr


# -- a client of the mcp 1.x line --------------------------------------------------------------

V1_CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def main(url, token):
        headers = {"Authorization": f"Bearer {token}"}
        async with streamablehttp_client(url, headers=headers) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = sorted(t.name for t in (await session.list_tools()).tools)
                added = await session.call_tool("add_task", {"title": "from mcp 1.x"})
                bad = await session.call_tool("add_task", {"title": ""})
                print(json.dumps({"tools": tools, "added": added.structuredContent,
                                  "bad": {"isError": bad.isError, "body": bad.structuredContent}}))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


@pytest.fixture(scope="session")
def mcp_v1_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A separate virtual environment with the newest mcp 1.x (agent SDKs still pin it)."""
    venv = tmp_path_factory.mktemp("mcp-v1") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "mcp>=1.20,<2"], check=True, timeout=300)
    return python


def test_an_mcp_1x_client_over_streamable_http(server: str, mcp_v1_python: Path, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(V1_CLIENT)
    run = subprocess.run(
        [str(mcp_v1_python), str(script), f"{server}/mcp", _token("gina")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(answer["tools"]) == TOOLS
    assert answer["added"]["status"] == "created"
    assert answer["bad"]["isError"] is True
    assert answer["bad"]["body"]["error"]["code"] == "validation_error"


def test_the_readme_mcp_client_snippet_runs(server: str) -> None:
    import contextlib
    import io
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL) if "/mcp" in b]
    code = snippet.replace("http://127.0.0.1:8000", server).replace("<a bearer token>", _token("readme"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    task_id, total = out.getvalue().split()
    assert len(task_id) == 36
    assert total == "1"


def test_the_sdk_is_loaded_on_the_first_mcp_request_only() -> None:
    """A deployment that serves only /api does not pay the SDK's memory."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from tests.integration.http_support import app_for, auth, serve

        async def main():
            async with serve(app_for()) as client:
                assert (await client.get("/api/tasks", headers=auth("x"))).status_code == 200
                print("before", "mcp" in sys.modules)
                call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
                await client.post("/mcp", json=call, headers=auth("x"))
                print("after", "mcp" in sys.modules)

        asyncio.run(main())
        """
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["before", "False", "after", "True"]
