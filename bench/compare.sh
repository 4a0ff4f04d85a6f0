#!/usr/bin/env bash
# baton against its peers in one run, the phases of issue 10: each peer (BullMQ on Node,
# bullmq-official in Rust) and baton run RUNS times on this machine, each run against its
# own private redis-server (AOF everysec, noeviction), interleaved run by run under the
# harness's noise guard (bench/peers/run.sh); prints ONE markdown table of medians and
# baton's ratios against each peer (bench/table.py).
#
# Usage: bench/compare.sh   (env: RUNS=3 JOBS=20000 CONCURRENCY=50 RSS_JOBS=1000000
#        QUIET_MAX_S=180 CONTENDED_RETRIES=2 FOREIGN_CPU_MAX_PCT=10 KEEP=dir to keep the
#        raw JSON lines; CONFIGS to replace the four configs below)
#
# Configs (each peer runs every one, every run):
#   1. completed jobs not kept, payload {"i": n}: every phase
#   2. each library's default retention (baton: last 1000 kept; BullMQ: all kept): process
#   3. not kept, 1 KiB payloads: process and memory
#   4. default retention, 1 KiB payloads: process
set -euo pipefail
cd "$(dirname "$0")/.."
export RUNS="${RUNS:-3}" JOBS="${JOBS:-20000}" CONCURRENCY="${CONCURRENCY:-50}"
export RSS_JOBS="${RSS_JOBS:-1000000}"
export CONFIGS="${CONFIGS:-RETENTION=none PAYLOAD_BYTES=0 PHASES=add_bulk,process,add_single,latency,memory,rss,idle_queues,many_workers;RETENTION=default PAYLOAD_BYTES=0 PHASES=process;RETENTION=none PAYLOAD_BYTES=1024 PHASES=process,memory;RETENTION=default PAYLOAD_BYTES=1024 PHASES=process}"
out="${KEEP:-$(mktemp -d)}"
mkdir -p "$out"
[[ -n "${KEEP:-}" ]] || trap 'rm -rf "$out"' EXIT
cargo build --release --locked --quiet
status=0
bench/peers/run.sh all > "$out/runs.jsonl" || status=$?
python3 bench/table.py "$out/runs.jsonl"
exit "$status"
