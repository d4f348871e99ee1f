#!/usr/bin/env bash
# tools/compare-peers.sh — Tern beside Redis, NATS JetStream and RabbitMQ, in one sitting.
#
#   tools/compare-peers.sh [BIN_DIR]        # BIN_DIR: Tern's release binaries (default .build-release/release)
#
# Installs what is missing from Debian's packages (redis-server, redis-tools, nats-server,
# rabbitmq-server, golang-go and the Go clients golang-github-nats-io-go-nats-dev,
# golang-github-rabbitmq-amqp091-go-dev), builds the two Go load generators in tools/peers/
# against the packaged sources (GOPATH mode, no module downloads), and runs the same workloads on
# every broker, one after the other, each on its own fresh data directory under $WORK_DIR:
#
#   produce  durable publish of 1 KiB messages in batches of $BATCH with confirms, 4 connections
#   consume  receive + ack of those messages, batches of $BATCH, 4 connections
#   single   one 1 KiB message per request, waiting for each confirm, 64 connections (Redis: 50)
#
# and `tern-bench raw-lmdb` (the disk's limit for durable 1 KiB appends in transactions of 1,000).
# Prints one table: msg/s per broker and Tern's ratio to each peer. Counts: COUNT (produce and
# consume), SINGLE_COUNT (single sends), RABBIT_COUNT and RABBIT_SINGLE_COUNT (RabbitMQ's). Ports 7390–7391 (Tern), 6390 (Redis), 4230 (NATS),
# 5673 (RabbitMQ) must be free. Every broker it starts, it stops.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/.build-release/release}
COUNT=${COUNT:-500000}
SINGLE_COUNT=${SINGLE_COUNT:-200000}
# RabbitMQ runs at a few thousand persistent messages per second here: fewer of them keep the
# sitting short (rates, not totals, are compared).
RABBIT_COUNT=${RABBIT_COUNT:-50000}
RABBIT_SINGLE_COUNT=${RABBIT_SINGLE_COUNT:-20000}
BATCH=${BATCH:-1000}
SIZE=1024
KEEP_WORK_DIR=${WORK_DIR:+1}   # a WORK_DIR you name is kept; the default one is removed at the end
WORK_DIR=${WORK_DIR:-$(mktemp -d /tmp/compare-peers.XXXXXX)}
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
log() { echo "compare-peers: $*" >&2; }

for tool in ternd tern-bench; do
  [ -x "$BIN/$tool" ] || { log "$BIN/$tool missing: swift build -c release --scratch-path .build-release"; exit 2; }
done

# --- installs --------------------------------------------------------------------------------
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v nats-server >/dev/null || need+=(nats-server)
command -v rabbitmq-server >/dev/null || need+=(rabbitmq-server)
command -v go >/dev/null || need+=(golang-go)
[ -d /usr/share/gocode/src/github.com/nats-io/nats.go ] || need+=(golang-github-nats-io-go-nats-dev)
[ -d /usr/share/gocode/src/github.com/rabbitmq/amqp091-go ] || need+=(golang-github-rabbitmq-amqp091-go-dev)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  $SUDO apt-get update -qq
  # Installing must not start the packaged services (they would hold the default ports).
  RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
  for service in redis-server rabbitmq-server nats-server; do $SUDO service "$service" stop >/dev/null 2>&1 || true; done
fi

log "building tools/peers (GOPATH=/usr/share/gocode, no network)"
for program in nats-bench rabbit-bench; do
  (cd "$ROOT/tools/peers" && GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= GOCACHE="$WORK_DIR/gocache" \
    go build -o "$WORK_DIR/$program" "./$program")
done

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "${RABBIT_NODE:-}" ] && /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" stop >/dev/null 2>&1 || true
  [ -n "$KEEP_WORK_DIR" ] || rm -rf "$WORK_DIR"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 1 300); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; log "port $1 never opened"; return 1; }
rate_json() { python3 -c 'import json,sys; print(round(json.loads(sys.stdin.read().strip().splitlines()[-1])["messages_per_second"]))'; }
rate_line() { awk '/^RESULT/ { print $2 }' | tail -1; }

declare -A R

# --- raw LMDB ----------------------------------------------------------------------------------
log "raw-lmdb"
R[raw,produce]=$("$BIN/tern-bench" raw-lmdb --count "$COUNT" --message-size $SIZE --directory "$WORK_DIR/" --json | rate_json)

# --- Tern ----------------------------------------------------------------------------------------
log "tern"
"$BIN/ternd" --data-dir "$WORK_DIR/tern" --http 127.0.0.1:7390 --binary 127.0.0.1:7391 --log-level warning &
pids+=($!); TERN_PID=$!
wait_port 7391
T="--server tern://127.0.0.1:7391 --message-size $SIZE --quiet --json"
R[tern,produce]=$("$BIN/tern-bench" produce $T --queue cp --connections 4 --batch "$BATCH" --count "$COUNT" | rate_json)
R[tern,consume]=$("$BIN/tern-bench" consume $T --queue cp --connections 4 --batch "$BATCH" --count "$COUNT" | rate_json)
R[tern,single]=$("$BIN/tern-bench" produce $T --queue cp1 --connections 64 --batch 1 --count "$SINGLE_COUNT" | rate_json)
H="--server http://127.0.0.1:7390 --message-size $SIZE --quiet --json"
R[tern-http,produce]=$("$BIN/tern-bench" produce $H --queue cph --connections 4 --batch "$BATCH" --count "$COUNT" | rate_json)
R[tern-http,consume]=$("$BIN/tern-bench" consume $H --queue cph --connections 4 --batch "$BATCH" --count "$COUNT" | rate_json)
kill "$TERN_PID"; wait "$TERN_PID" 2>/dev/null || true

# --- Redis: streams, appendfsync always ----------------------------------------------------------
log "redis"
mkdir -p "$WORK_DIR/redis"
redis-server --port 6390 --dir "$WORK_DIR/redis" --appendonly yes --appendfsync always --save '' \
  --daemonize no --logfile "$WORK_DIR/redis/log" &
pids+=($!); REDIS_PID=$!
wait_port 6390
BODY=$(head -c $SIZE /dev/zero | tr '\0' 'x')
redis_rate() { redis-benchmark -p 6390 --csv "$@" | awk -F'","' 'NR==2 { print int($2) }'; }
R[redis,produce]=$(redis_rate -n "$COUNT" -c 4 -P "$BATCH" XADD cp '*' f "$BODY")
R[redis,single]=$(redis_rate -n "$SINGLE_COUNT" -c 50 -P 1 XADD cp1 '*' f "$BODY")
kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true

# --- NATS JetStream, file storage ----------------------------------------------------------------
log "nats"
nats-server -js -sd "$WORK_DIR/nats" -p 4230 -a 127.0.0.1 >"$WORK_DIR/nats.log" 2>&1 &
pids+=($!); NATS_PID=$!
wait_port 4230
N="-url nats://127.0.0.1:4230 -size $SIZE"
R[nats,produce]=$("$WORK_DIR/nats-bench" $N -mode publish -conns 4 -batch "$BATCH" -count "$COUNT" | rate_line)
R[nats,consume]=$("$WORK_DIR/nats-bench" $N -mode consume -conns 4 -batch "$BATCH" -count "$COUNT" | rate_line)
R[nats,single]=$("$WORK_DIR/nats-bench" $N -mode single -conns 64 -count "$SINGLE_COUNT" -stream SINGLE | rate_line)
kill "$NATS_PID"; wait "$NATS_PID" 2>/dev/null || true

# --- RabbitMQ: durable classic queue, persistent messages, publisher confirms ---------------------
log "rabbitmq"
export RABBITMQ_NODENAME=compare-peers@localhost RABBITMQ_NODE_PORT=5673 RABBITMQ_DIST_PORT=25673
export RABBITMQ_MNESIA_BASE="$WORK_DIR/rabbit/mnesia" RABBITMQ_LOG_BASE="$WORK_DIR/rabbit/log"
export RABBITMQ_ENABLED_PLUGINS_FILE="$WORK_DIR/rabbit/enabled_plugins" RABBITMQ_CONFIG_FILE="$WORK_DIR/rabbit/rabbitmq"
mkdir -p "$WORK_DIR/rabbit/log"; echo '[].' >"$RABBITMQ_ENABLED_PLUGINS_FILE"; : >"$RABBITMQ_CONFIG_FILE.conf"
RABBIT_NODE=$RABBITMQ_NODENAME
# The scripts themselves, not Debian's wrappers (which switch to the rabbitmq user and its own
# Erlang cookie): server and rabbitmqctl then share the caller's cookie and data directory.
RABBIT_BIN=/usr/lib/rabbitmq/bin
pgrep -x epmd >/dev/null && EPMD_WAS_RUNNING=1 || EPMD_WAS_RUNNING=
"$RABBIT_BIN/rabbitmq-server" >"$WORK_DIR/rabbit/stdout" 2>&1 &
pids+=($!); RABBIT_PID=$!
# The node registers with epmd only after a while (tens of seconds on a loaded machine).
for try in $(seq 1 60); do
  "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" await_startup --timeout 60 >/dev/null 2>&1 && break
  [ "$try" -lt 60 ] || { log "RabbitMQ did not start: $WORK_DIR/rabbit"; exit 1; }
  sleep 2
done
A="-url amqp://guest:guest@127.0.0.1:5673/ -size $SIZE"
R[rabbitmq,produce]=$("$WORK_DIR/rabbit-bench" $A -mode publish -conns 4 -batch "$BATCH" -count "$RABBIT_COUNT" | rate_line)
R[rabbitmq,consume]=$("$WORK_DIR/rabbit-bench" $A -mode consume -conns 4 -batch "$BATCH" -count "$RABBIT_COUNT" | rate_line)
R[rabbitmq,single]=$("$WORK_DIR/rabbit-bench" $A -mode single -conns 64 -count "$RABBIT_SINGLE_COUNT" -queue single | rate_line)
"$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" stop >/dev/null 2>&1 || true
wait "$RABBIT_PID" 2>/dev/null || true
RABBIT_NODE=
[ -n "$EPMD_WAS_RUNNING" ] || epmd -kill >/dev/null 2>&1 || true

# --- the table -------------------------------------------------------------------------------------
python3 - "$COUNT" "$SINGLE_COUNT" "$BATCH" <<EOF
import sys
count, single, batch = sys.argv[1:]
r = {$(for key in "${!R[@]}"; do printf '"%s": "%s", ' "$key" "${R[$key]}"; done)}
def v(name, workload):
    x = r.get(f"{name},{workload}", "")
    return float(x) if x else None
def cell(x): return "—" if x is None else f"{x:,.0f}"
def ratio(a, b): return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}"
rows = [("produce", f"durable produce 1 KiB, batches of {batch}, 4 connections ({count} msgs)"),
        ("consume", f"receive + ack, batches of {batch}, 4 connections"),
        ("single", f"single-message sends, 64 connections (Redis 50), {single} msgs")]
print("| workload | Tern binary | Tern HTTP | raw LMDB | Redis | NATS JS | RabbitMQ | Tern ÷ raw | Tern ÷ Redis | Tern ÷ NATS | Tern ÷ RabbitMQ |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for key, label in rows:
    t = v("tern", key)
    print(f"| {label} | {cell(t)} | {cell(v('tern-http', key))} | {cell(v('raw', key))} | {cell(v('redis', key))} | "
          f"{cell(v('nats', key))} | {cell(v('rabbitmq', key))} | {ratio(t, v('raw', key))} | {ratio(t, v('redis', key))} | "
          f"{ratio(t, v('nats', key))} | {ratio(t, v('rabbitmq', key))} |")
print(f"| consume ÷ produce (same broker) | {ratio(v('tern','consume'), v('tern','produce'))} | "
      f"{ratio(v('tern-http','consume'), v('tern-http','produce'))} | | | {ratio(v('nats','consume'), v('nats','produce'))} | "
      f"{ratio(v('rabbitmq','consume'), v('rabbitmq','produce'))} | | | | |")
EOF
[ -z "$KEEP_WORK_DIR" ] || log "data and logs in $WORK_DIR"
