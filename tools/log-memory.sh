#!/usr/bin/env bash
# The Raft log's memory in a 3-node cluster (docs/performance.md, "Bounded Raft logs"): COUNT
# durable 1 KiB sends in batches of $BATCH (default 1,000) to the leader, then each node's heap and other anonymous
# memory (RssAnon), its log entries in memory and its snapshot index (GET /cluster).
#
#   tools/log-memory.sh [BIN_DIR] [COUNT] [-- EXTRA TERND FLAGS…]
#   BATCH=10 tools/log-memory.sh .build-release/release 150000 -- --raft-log-entries 10000
set -euo pipefail

BIN=${1:-$(swift build --show-bin-path)}
COUNT=${2:-200000}
shift $(( $# >= 2 ? 2 : $# ))
[[ "${1:-}" == "--" ]] && shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "$BIN" && pwd)
DIR=$(mktemp -d /tmp/tern-log-memory.XXXXXX)
BASE_PORT=${BASE_PORT:-18700}
cleanup() {
    TERN_BIN_DIR=$BIN "$ROOT/tools/cluster" stop "$DIR/cluster" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

TERN_BIN_DIR=$BIN "$ROOT/tools/cluster" start 3 "$DIR/cluster" --base-port "$BASE_PORT" -- --log-level warning "$@" >/dev/null
leader=""
for _ in $(seq 1 600); do
    leader=$(curl -s "http://127.0.0.1:$((BASE_PORT + 10))/cluster" | python3 -c 'import json,sys; print((json.load(sys.stdin).get("controller") or {}).get("leader") or "")' 2>/dev/null || true)
    [[ "$leader" == node-* ]] && curl -sf -o /dev/null "http://127.0.0.1:$((BASE_PORT + 10 * ${leader#node-}))/queues" && break
    sleep 0.1
done
i=${leader#node-}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); leader $leader; flags: $*"
"$BIN/tern-bench" produce --server "tern://127.0.0.1:$((BASE_PORT + 10 * i + 1))" --count "$COUNT" --batch "${BATCH:-1000}" --connections 4 --quiet
sleep 3
for n in 1 2 3; do
    pid=$(cat "$DIR/cluster/node-$n/ternd.pid")
    anon=$(awk '/^RssAnon/ {print $2 " " $3}' "/proc/$pid/status")
    group=$(curl -s "http://127.0.0.1:$((BASE_PORT + 10 * n))/cluster" | python3 -c 'import json,sys; g=json.load(sys.stdin)["groups"][0]; print("applied", g["applied_index"], "snapshot_index", g.get("snapshot_index"), "log_entries", g.get("log_entries"))')
    echo "node-$n: RssAnon $anon; $group"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
