#!/usr/bin/env bash
# Replicated throughput and latency in one sitting (docs/performance.md, "Cluster"):
#   1. durable produce, 1 KiB, batches of 1,000, 4 connections, binary: one node alone;
#   2. the same against the leader of a 3-node cluster (replication factor 3, one disk);
#   3. end-to-end latency at 10,000 msg/s in batches of 100, then of 10, through the 3-node leader.
#
#   tools/cluster-bench.sh [BIN_DIR] [COUNT]
#   tools/cluster-bench.sh .build-release/release 200000
set -euo pipefail

BIN=${1:-.build-release/release}
COUNT=${2:-200000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "$BIN" && pwd)
DIR=$(mktemp -d /tmp/tern-cluster-bench.XXXXXX)
BASE_PORT=${BASE_PORT:-18500}
PID=
cleanup() {
    [[ -n "$PID" ]] && kill -9 "$PID" 2>/dev/null || true
    TERN_BIN_DIR=$BIN "$ROOT/tools/cluster" stop "$DIR/cluster" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN/ternd" --data-dir "$DIR/single" --http 127.0.0.1:18480 --binary 127.0.0.1:18481 --log-level warning 2>>"$DIR/single.log" &
PID=$!
until curl -sf -o /dev/null http://127.0.0.1:18480/health; do sleep 0.1; done
echo "== single node: produce"
"$BIN/tern-bench" produce --server tern://127.0.0.1:18481 --count "$COUNT" --batch 1000 --connections 4 --quiet
kill -TERM "$PID"; wait "$PID" || true; PID=

TERN_BIN_DIR=$BIN "$ROOT/tools/cluster" start 3 "$DIR/cluster" --base-port "$BASE_PORT" -- --log-level warning >/dev/null
leader=""
for _ in $(seq 1 600); do
    leader=$(curl -s "http://127.0.0.1:$((BASE_PORT + 10))/cluster" | python3 -c 'import json,sys; print((json.load(sys.stdin).get("controller") or {}).get("leader") or "")' 2>/dev/null || true)
    [[ "$leader" == node-* ]] && curl -sf -o /dev/null "http://127.0.0.1:$((BASE_PORT + 10 * ${leader#node-}))/queues" && break
    sleep 0.1
done
i=${leader#node-}
echo "== 3 nodes, replication factor 3: produce to the leader ($leader)"
"$BIN/tern-bench" produce --server "tern://127.0.0.1:$((BASE_PORT + 10 * i + 1))" --count "$COUNT" --batch 1000 --connections 4 --quiet
echo "== 3 nodes: end-to-end at 10,000 msg/s, batches of 100, 20 s"
"$BIN/tern-bench" end-to-end --server "tern://127.0.0.1:$((BASE_PORT + 10 * i + 1))" --queue e2e100 --rate 10000 --batch 100 --duration 20 --quiet
echo "== 3 nodes: end-to-end at 10,000 msg/s, batches of 10, 20 s"
"$BIN/tern-bench" end-to-end --server "tern://127.0.0.1:$((BASE_PORT + 10 * i + 1))" --queue e2e --rate 10000 --batch 10 --duration 20 --quiet
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
