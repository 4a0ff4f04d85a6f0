#!/usr/bin/env bash
# Property-based test of `baton serve` against its own OpenAPI document with
# schemathesis (PyPI): every generated request must get a response the document
# allows, never a 5xx. Not part of CI (it needs pip); run it after changing the API.
# Usage: tools/api-fuzz.sh [max-examples]     (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v st >/dev/null 2>&1 || pip install -q schemathesis
cargo build --release --locked --quiet
dir="$(mktemp -d)"; rport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
aport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --port "$rport" --dir "$dir" --save "" --appendonly yes --maxmemory-policy noeviction --daemonize no >/dev/null &
rpid=$!
BATON_API_TOKEN=fuzz ./target/release/baton --redis-url "redis://127.0.0.1:$rport" serve --listen "127.0.0.1:$aport" 2>"$dir/serve.log" &
spid=$!
trap 'kill $spid $rpid 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$aport/healthz" >/dev/null && break; sleep 0.1; done
st run "http://127.0.0.1:$aport/openapi.json" --checks all --max-examples "${1:-100}" -H "Authorization: Bearer fuzz"
