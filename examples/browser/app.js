// The tasks API from a browser, with no framework and no build step (SPEC §15).
//
// - Every call sends the bearer token; errors are RFC 9457 problem+json (shown as `detail`).
// - A toggle sends If-Match with the version the page holds, so a concurrent edit elsewhere is
//   a 412 instead of a lost update; the stream then brings the current state.
// - EventSource cannot send headers: POST /api/tasks/stream/tickets trades the token for a ticket
//   valid 60 s, and the stream opens with ?ticket=. A ticket only opens streams, so it may sit in
//   a URL. On an error the page asks for a new ticket and reopens with ?since=<last event id>:
//   nothing is missed or repeated across the reconnect.
"use strict";

const state = { token: null, tasks: new Map(), source: null, lastEventId: null, retry: 0 };
const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${state.token}`, ...(options.headers || {}) },
  });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({ detail: response.statusText }));
    throw Object.assign(new Error(problem.detail || response.statusText), { status: response.status });
  }
  return response.status === 204 ? null : response.json();
}

function show(error) {
  $("error").textContent = error ? String(error.message || error) : "";
}

function render() {
  const list = $("tasks");
  list.replaceChildren();
  const tasks = [...state.tasks.values()].sort((a, b) => a.created_at.localeCompare(b.created_at));
  for (const task of tasks) {
    const item = document.createElement("li");
    item.dataset.id = task.id;
    item.className = task.completed ? "completed" : "";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = task.completed;
    box.id = `task-${task.id}`;
    box.addEventListener("change", () => toggle(task.id));
    const label = document.createElement("label");
    label.htmlFor = box.id;
    label.textContent = task.title;  // text, never HTML: titles are user input
    item.append(box, " ", label);
    list.append(item);
  }
}

async function toggle(id) {
  const task = state.tasks.get(id);
  try {
    const updated = await api(`/api/tasks/${id}/complete`, {
      method: "PATCH",
      headers: { "Content-Type": "application/json", "If-Match": `"${task.version}"` },
      body: JSON.stringify({ completed: !task.completed }),
    });
    state.tasks.set(id, updated);
    show(null);
  } catch (error) {
    show(error.status === 412 ? "changed elsewhere; showing the current state" : error);
    state.tasks.set(id, await api(`/api/tasks/${id}`));
  }
  render();
}

function applyEvent(kind, event) {
  state.lastEventId = event.lastEventId || state.lastEventId;
  const data = JSON.parse(event.data);
  if (kind === "task") state.tasks.set(data.id, data);
  if (kind === "deleted") state.tasks.delete(data.id);
  if (kind === "reminder") notify(data);
  render();
}

function notify({ task, remind_at }) {
  const text = `${task.title} (${new Date(remind_at).toLocaleTimeString()})`;
  if ("Notification" in window && Notification.permission === "granted") new Notification("Reminder", { body: text });
  else show(`Reminder: ${text}`);
}

async function connect() {
  if (state.source) state.source.close();
  const { ticket } = await api("/api/tasks/stream/tickets", { method: "POST" });
  const params = new URLSearchParams({ ticket });
  if (state.lastEventId) params.set("since", state.lastEventId);
  const source = (state.source = new EventSource(`/api/tasks/stream?${params}`));
  source.addEventListener("ready", (event) => {
    state.lastEventId = event.lastEventId;
    state.retry = 0;
    $("status").textContent = "live";
    $("status").className = "live";
  });
  for (const kind of ["task", "deleted", "reminder"]) source.addEventListener(kind, (e) => applyEvent(kind, e));
  source.onerror = () => {
    // The ticket in the URL may have expired, or the server went away (a deploy): reconnect
    // ourselves with a fresh ticket, from the last event seen, backing off while it fails.
    source.close();
    reconnectLater();
  };
}

function reconnectLater() {
  $("status").textContent = "reconnecting…";
  $("status").className = "";
  const delay = Math.min(500 * 2 ** state.retry++, 10000);
  setTimeout(() => connect().catch(reconnectLater), delay);
}

async function start(token) {
  state.token = token;
  show(null);
  const tasks = await api("/api/tasks?limit=200");
  state.tasks = new Map(tasks.map((t) => [t.id, t]));
  render();
  $("add").hidden = false;
  await connect();
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
}

$("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  start($("token").value.trim()).catch(show);
});

$("mint").addEventListener("click", async () => {
  // Development only: the server signs a token for any user id with its development secret.
  const response = await fetch("/dev/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user_id: $("user").value.trim() || "dev-user" }),
  });
  const body = await response.json();
  if (!response.ok) return show(body.detail);
  $("token").value = body.token;
  start(body.token).catch(show);
});

$("add").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const task = await api("/api/tasks", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID() },
      body: JSON.stringify({ title: $("title").value }),
    });
    state.tasks.set(task.id, task);
    $("title").value = "";
    render();
  } catch (error) {
    show(error);
  }
});

// A token in the URL fragment (never sent to a server): index.html#token=…
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) {
  $("token").value = fromHash;
  start(fromHash).catch(show);
}
