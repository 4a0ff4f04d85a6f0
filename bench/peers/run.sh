#!/usr/bin/env bash
# Peer benchmark harness: BullMQ (Node), bullmq-official (Rust) and baton, each run
# against its own private redis-server on a free loopback port in a temp dir.
#
# Usage: bench/peers/run.sh [all|node|rust|baton|peers]   (default: all; peers = node+rust)
# Env:   JOBS=20000 CONCURRENCY=50 RUNS=1 DEADLINE_S=600 WARMUP=1 SKIP_INSTALL=0
#        PHASES, PAYLOAD_BYTES, RETENTION, WORKERS, BULK, RATE, LATENCY_JOBS (read by
#        every bench; RSS_JOBS, IDLE_QUEUES, IDLE_SECONDS, MANY_WORKERS by baton's only)
#        CONFIGS="RETENTION=none PHASES=process;RETENTION=default PHASES=process" runs
#        every peer once per config (;-separated sets of VAR=value), run by run
#        BATON=target/release/baton (the binary baton.sh runs)
#        QUIET_MAX_S=180 (wait for no running compiler before each run; 0 = off)
#        CONTENDED_RETRIES=2 FOREIGN_CPU_MAX_PCT=10 (re-run a measurement during which
#        other processes used more than that share of the machine's CPU)
#        REDIS_SERVER=/usr/bin/redis-server
# Stdout: one JSON line per peer run. Everything else goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WHICH="${1:-all}"
RUNS="${RUNS:-1}"
REDIS_SERVER="${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}"
export JOBS="${JOBS:-20000}" CONCURRENCY="${CONCURRENCY:-50}"

case "$WHICH" in all | node | rust | baton | peers) ;; *)
  echo "usage: $0 [all|node|rust|baton|peers]" >&2
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
  [[ -n "${TIMES_FILE:-}" ]] && rm -f "$TIMES_FILE"
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
compilers_running() { ps -eo comm= | grep -cxE 'rustc|cargo|cc1|cc1plus|ld|ld\.lld|rust-lld|mold|node-gyp' || true; }

# This is a 2-core machine: a compile running next to a benchmark halves its
# numbers. Before each run wait (at most QUIET_MAX_S, default 180 s) until no
# compiler process has been seen for 5 s in a row. QUIET_MAX_S=0 disables it.
wait_quiet() {
  local max="${QUIET_MAX_S:-180}" waited=0 calm=0
  ((max > 0)) || return 0
  while ((calm < 5 && waited < max)); do
    if [[ "$(compilers_running)" == 0 ]]; then calm=$((calm + 1)); else
      ((calm > 0 || waited == 0)) && log "waiting for compiler processes to finish (max ${max}s)"
      calm=0
    fi
    sleep 1
    waited=$((waited + 1))
  done
  ((calm >= 5)) || log "WARNING: machine still busy after ${max}s; numbers may be low"
}

# CPU accounting, to detect other work on the machine during a measurement.
busy_ticks() { # all CPUs, non-idle, in USER_HZ ticks
  local _cpu user nice system idle iowait irq softirq steal _rest
  read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
  echo $((user + nice + system + irq + softirq + steal))
}
pid_ticks() { # utime+stime of one live process
  local f
  f="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null)" || { echo 0; return; }
  set -- $f
  echo $((${12} + ${13}))
}
TIMES_FILE=""
children_ticks() { # sets CHILD_TICKS: utime+stime of this shell's waited-for children
  # `times` must run in this shell (not in $(...) or <(...), which fork and
  # would report the subshell's own, empty, children).
  [[ -n "$TIMES_FILE" ]] || TIMES_FILE="$(mktemp -t baton-peer-times.XXXXXX)"
  times >"$TIMES_FILE"
  CHILD_TICKS="$(sed -n 2p "$TIMES_FILE" | awk -v hz="$(getconf CLK_TCK)" '
    function sec(x,  m) { m = x; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", x); sub(/s$/, "", x); return m * 60 + x }
    { printf "%d\n", (sec($1) + sec($2)) * hz }')"
}

run_once() { # name, run-index, config, command...
  local name="$1" i="$2" config="$3"
  shift 3
  local attempt max_attempts=$((${CONTENDED_RETRIES:-2} + 1)) max_foreign="${FOREIGN_CPU_MAX_PCT:-10}"
  local ncpu hz
  ncpu="$(nproc)"
  hz="$(getconf CLK_TCK)"
  for ((attempt = 1; attempt <= max_attempts; attempt++)); do
    wait_quiet
    start_redis || return 1
    local load
    load="$(cut -d" " -f1-3 /proc/loadavg)"
    log "$name run $i/$RUNS (attempt $attempt): JOBS=$JOBS CONCURRENCY=$CONCURRENCY $config (loadavg: $load)"
    local out="$REDIS_DIR/bench.json"
    local b0 c0 r0 t0 b1 c1 r1 t1
    children_ticks; c0=$CHILD_TICKS
    b0="$(busy_ticks)" r0="$(pid_ticks "$REDIS_PID")" t0="$(date +%s%N)"
    # Run in the background and `wait`, so INT/TERM traps fire immediately.
    # shellcheck disable=SC2086 # the config is a list of VAR=value words
    REDIS_HOST=127.0.0.1 REDIS_PORT="$REDIS_PORT" env $config "$@" >"$out" &
    BENCH_PID=$!
    local rc=0
    wait "$BENCH_PID" || rc=$?
    BENCH_PID=""
    children_ticks; c1=$CHILD_TICKS
    b1="$(busy_ticks)" r1="$(pid_ticks "$REDIS_PID")" t1="$(date +%s%N)"
    if ((rc != 0)); then
      stop_redis
      log "$name run $i failed (exit $rc)"
      return "$rc"
    fi
    # CPU used by everything except this benchmark and its redis-server, as a
    # share of the machine's capacity over the run.
    local foreign=$(((b1 - b0) - (c1 - c0) - (r1 - r0)))
    ((foreign < 0)) && foreign=0
    local cap=$(((t1 - t0) * ncpu * hz / 1000000000))
    ((cap > 0)) || cap=1
    local pct=$((100 * foreign / cap))
    log "$name run $i: other processes used ${pct}% of the machine's CPU during the run (limit ${max_foreign}%)"
    if ((pct > max_foreign && attempt < max_attempts)); then
      log "$name run $i: machine was busy; discarding and retrying"
      stop_redis
      continue
    fi
    ((pct > max_foreign)) && log "WARNING: $name run $i was contended (${pct}% foreign CPU); keeping it (out of retries)"
    # The run's JSON with what the noise guard saw, for the table.
    python3 -c 'import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
r["guard"] = {"run": int(sys.argv[2]), "attempt": int(sys.argv[3]), "foreign_cpu_pct": int(sys.argv[4]),
              "limit_pct": int(sys.argv[5]), "contended": int(sys.argv[4]) > int(sys.argv[5]), "loadavg_before": sys.argv[6]}
print(json.dumps(r))' "$out" "$i" "$attempt" "$pct" "$max_foreign" "$load"
    stop_redis
    return 0
  done
}

# Install everything first, then interleave the peers run by run
# (node, rust, node, rust, ...) so that background load on this small
# machine hits both peers alike. A failing peer does not stop the other one;
# the exit status reports it.
status=0
peers=()
if [[ "$WHICH" == all || "$WHICH" == peers || "$WHICH" == node ]]; then
  if install_node; then peers+=(node); else log "bullmq-node: install failed"; status=1; fi
fi
if [[ "$WHICH" == all || "$WHICH" == peers || "$WHICH" == rust ]]; then
  if install_rust; then peers+=(rust); else log "bullmq-rs: install failed"; status=1; fi
fi
if [[ "$WHICH" == all || "$WHICH" == baton ]]; then
  if [[ -x "${BATON:-$HERE/../../target/release/baton}" ]]; then peers+=(baton); else
    log "baton: no binary at ${BATON:-$HERE/../../target/release/baton} (cargo build --release)"
    status=1
  fi
fi
IFS=';' read -r -a configs <<<"${CONFIGS:-}"
((${#configs[@]})) || configs=("")
declare -A failed=()
for ((i = 1; i <= RUNS; i++)); do
  for c in "${configs[@]}"; do
    for p in "${peers[@]}"; do
      [[ -n "${failed[$p]:-}" ]] && continue
      case "$p" in
      node) run_once bullmq-node "$i" "$c" node "$HERE/bullmq/bench.mjs" || { failed[$p]=1; status=1; } ;;
      rust) run_once bullmq-rs "$i" "$c" "$HERE/bullmq-rs/target/release/bench-bullmq-rs" || { failed[$p]=1; status=1; } ;;
      baton) run_once baton "$i" "$c" "$HERE/baton.sh" || { failed[$p]=1; status=1; } ;;
      esac
    done
  done
done
exit "$status"
