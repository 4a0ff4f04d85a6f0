#!/usr/bin/env bash
# Peer benchmark harness: BullMQ (Node) and bullmq-official (Rust), each against
# its own private redis-server on a free loopback port in a temp dir.
#
# Usage: bench/peers/run.sh [all|node|rust]     (default: all)
# Env:   JOBS=20000 CONCURRENCY=50 RUNS=1 DEADLINE_S=600 WARMUP=1 SKIP_INSTALL=0
#        REDIS_SERVER=/usr/bin/redis-server
# Stdout: one JSON line per peer run. Everything else goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WHICH="${1:-all}"
RUNS="${RUNS:-1}"
REDIS_SERVER="${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}"
export JOBS="${JOBS:-20000}" CONCURRENCY="${CONCURRENCY:-50}"

case "$WHICH" in all | node | rust) ;; *)
  echo "usage: $0 [all|node|rust]" >&2
  exit 2
  ;;
esac

log() { echo "[run.sh] $*" >&2; }

# ---------------------------------------------------------------- redis ---
REDIS_PID=""
REDIS_DIR=""
BENCH_PID=""

stop_bench() {
  if [[ -n "$BENCH_PID" ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
    kill "$BENCH_PID" 2>/dev/null || true
    wait "$BENCH_PID" 2>/dev/null || true
  fi
  BENCH_PID=""
}

stop_redis() {
  if [[ -n "$REDIS_PID" ]]; then
    if kill -0 "$REDIS_PID" 2>/dev/null; then
      kill "$REDIS_PID" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$REDIS_PID" 2>/dev/null || true
    fi
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  [[ -n "$REDIS_DIR" ]] && rm -rf "$REDIS_DIR"
  REDIS_PID=""
  REDIS_DIR=""
}
cleanup() {
  stop_bench
  stop_redis
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  # Ask the kernel for a free ephemeral loopback port (never 6379).
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Starts a private redis-server; sets REDIS_PORT, REDIS_PID, REDIS_DIR.
start_redis() {
  local attempt port
  for attempt in 1 2 3 4 5; do
    port="$(free_port)"
    [[ "$port" == 6379 ]] && continue
    REDIS_DIR="$(mktemp -d -t baton-peer-redis.XXXXXX)"
    "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --dir "$REDIS_DIR" \
      --daemonize no --logfile "$REDIS_DIR/redis.log" \
      --save "" --appendonly yes --appendfsync everysec --maxmemory-policy noeviction &
    REDIS_PID=$!
    for _ in $(seq 100); do
      if redis_ping "$port"; then
        REDIS_PORT="$port"
        log "redis-server pid $REDIS_PID on 127.0.0.1:$port (dir $REDIS_DIR)"
        return 0
      fi
      kill -0 "$REDIS_PID" 2>/dev/null || break
      sleep 0.05
    done
    log "redis-server failed to start on port $port (attempt $attempt):"
    tail -5 "$REDIS_DIR/redis.log" >&2 || true
    stop_redis
  done
  log "giving up starting redis-server"
  return 1
}

redis_ping() {
  if command -v redis-cli >/dev/null; then
    [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'PING\r\n' >&3 && read -r -t 1 line <&3 && [[ "$line" == +PONG* ]]) 2>/dev/null
  fi
}

# ------------------------------------------------------------- install ---
install_node() {
  [[ "${SKIP_INSTALL:-0}" == 1 && -d "$HERE/bullmq/node_modules" ]] && return 0
  log "npm ci (bullmq)"
  (cd "$HERE/bullmq" && npm ci --no-audit --no-fund >&2)
}

install_rust() {
  [[ "${SKIP_INSTALL:-0}" == 1 && -x "$HERE/bullmq-rs/target/release/bench-bullmq-rs" ]] && return 0
  log "cargo build --release --locked (bullmq-rs)"
  (cd "$HERE/bullmq-rs" && cargo build --release --locked >&2)
}

# ----------------------------------------------------------------- run ---
run_once() { # name, run-index, command...
  local name="$1" i="$2"
  shift 2
  start_redis || return 1
  local busy
  busy="$(pgrep -x 'rustc|cargo|cc1|cc1plus|ld' | wc -l || true)"
  log "$name run $i/$RUNS: JOBS=$JOBS CONCURRENCY=$CONCURRENCY (loadavg: $(cut -d" " -f1-3 /proc/loadavg); compiler processes running: $busy)"
  # Run in the background and `wait`, so INT/TERM traps fire immediately.
  REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT" "$@" &
  BENCH_PID=$!
  local rc=0
  wait "$BENCH_PID" || rc=$?
  BENCH_PID=""
  stop_redis
  if ((rc != 0)); then
    log "$name run $i failed (exit $rc)"
    return "$rc"
  fi
}

# Install everything first, then interleave the peers run by run
# (node, rust, node, rust, ...) so that background load on this small
# machine hits both peers alike. A failing peer does not stop the other one;
# the exit status reports it.
status=0
peers=()
if [[ "$WHICH" == all || "$WHICH" == node ]]; then
  if install_node; then peers+=(node); else log "bullmq-node: install failed"; status=1; fi
fi
if [[ "$WHICH" == all || "$WHICH" == rust ]]; then
  if install_rust; then peers+=(rust); else log "bullmq-rs: install failed"; status=1; fi
fi
declare -A failed=()
for ((i = 1; i <= RUNS; i++)); do
  for p in "${peers[@]}"; do
    [[ -n "${failed[$p]:-}" ]] && continue
    case "$p" in
    node) run_once bullmq-node "$i" node "$HERE/bullmq/bench.mjs" || { failed[$p]=1; status=1; } ;;
    rust) run_once bullmq-rs "$i" "$HERE/bullmq-rs/target/release/bench-bullmq-rs" || { failed[$p]=1; status=1; } ;;
    esac
  done
done
exit "$status"
