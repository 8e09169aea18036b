#!/usr/bin/env bash
# Renders /docs in headless Chromium with the network limited to loopback and checks that
# Swagger UI drew the operations: proof that the docs work offline (no CDN).
# Needs Debian's chromium (`apt-get install chromium`) and the project's venv (`make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
chromium=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chromium" ] || { echo "chromium is not installed (apt-get install chromium)" >&2; exit 2; }
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
workdir=$(mktemp -d)
DATABASE_URL=memory:// AUTH_JWT_SECRET=$(head -c 48 /dev/urandom | base64) \
  .venv/bin/todo-api serve --port "$port" > "$workdir/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$workdir"' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/health" > /dev/null && break; sleep 0.2; done
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$workdir/profile" --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
  --virtual-time-budget=10000 --dump-dom "http://127.0.0.1:$port/docs" > "$workdir/dom.html" 2> /dev/null
"$chromium" --headless --no-sandbox --disable-gpu --user-data-dir="$workdir/profile2" \
  --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" --virtual-time-budget=10000 \
  --window-size=1280,2000 --screenshot="${SCREENSHOT:-$workdir/docs.png}" "http://127.0.0.1:$port/docs" 2> /dev/null || true
for text in "Tasks API" "/api/tasks/{task_id}/complete" "Change feed for incremental sync" "opblock"; do
  grep -q -- "$text" "$workdir/dom.html" || { echo "docs did not render: '$text' missing" >&2; exit 1; }
done
echo "docs rendered offline: $(grep -o 'opblock-summary-path' "$workdir/dom.html" | wc -l) operations drawn"
