#!/usr/bin/env bash
# baton's side of the peer harness: maps run.sh's environment (the knobs the peer
# benches read) to `baton bench` flags, against the private redis-server run.sh started.
# BATON: the binary (default: target/release/baton of this checkout).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BATON="${BATON:-$HERE/../../target/release/baton}"
args=(--jobs "${JOBS:-20000}" --concurrency "${CONCURRENCY:-50}"
  --payload-bytes "${PAYLOAD_BYTES:-0}" --retention "${RETENTION:-none}"
  --workers "${WORKERS:-1}" --bulk-size "${BULK:-1000}" --rate "${RATE:-1000}"
  --latency-jobs "${LATENCY_JOBS:-5000}" --rss-jobs "${RSS_JOBS:-100000}"
  --idle-queues "${IDLE_QUEUES:-100}" --idle-seconds "${IDLE_SECONDS:-10}"
  --many-workers "${MANY_WORKERS:-10}" --json)
[[ -n "${MANY_JOBS:-}" ]] && args+=(--many-jobs "$MANY_JOBS")
[[ -n "${PHASES:-}" ]] && args+=(--phases "$PHASES")
exec "$BATON" --redis-url "redis://${REDIS_HOST:-127.0.0.1}:${REDIS_PORT:?REDIS_PORT is required}" bench "${args[@]}"
