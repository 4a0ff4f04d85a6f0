#!/usr/bin/env bash
# baton against its peers in one run: each peer (BullMQ on Node, bullmq-official in
# Rust) and baton run RUNS times on this machine, each against its own private
# redis-server (AOF on, noeviction); prints a markdown table of medians and ratios.
# Usage: bench/compare.sh   (env: RUNS=3 JOBS=20000 CONCURRENCY=50)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
export JOBS="${JOBS:-20000}" CONCURRENCY="${CONCURRENCY:-50}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo build --release --locked --quiet
RUNS="$RUNS" bench/peers/run.sh > "$out/peers.jsonl"
for _ in $(seq "$RUNS"); do
  ./target/release/baton bench --jobs "$JOBS" --concurrency "$CONCURRENCY" --json >> "$out/baton.jsonl"
done
python3 bench/table.py "$out/peers.jsonl" "$out/baton.jsonl"
