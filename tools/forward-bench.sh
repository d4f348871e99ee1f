#!/usr/bin/env bash
# Binary forwarding's cost in one sitting (docs/performance.md, "Binary forwarding"): a 3-node
# cluster (replication factor 3, one disk); durable produce, 1 KiB, 4 binary connections, to the
# leader directly and through a follower with `tern-bench --stay-on-node` (every request
# forwarded), in batches of 100 and of 1,000, then receive + ack in batches of 100 the same two
# ways. Runs alternate leader / follower so that machine load hits both alike.
#
#   tools/forward-bench.sh [BIN_DIR] [COUNT]
#   tools/forward-bench.sh .build-release/release 100000
set -euo pipefail

BIN=${1:-.build-release/release}
COUNT=${2:-100000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "$BIN" && pwd)
DIR=$(mktemp -d /tmp/tern-forward-bench.XXXXXX)
BASE_PORT=${BASE_PORT:-18700}
cleanup() {
    TERN_BIN_DIR=$BIN "$ROOT/tools/cluster" stop "$DIR/cluster" >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
TERN_BIN_DIR=$BIN "$ROOT/tools/cluster" start 3 "$DIR/cluster" --base-port "$BASE_PORT" -- --log-level warning >/dev/null
leader=""
for _ in $(seq 1 600); do
    leader=$(curl -s "http://127.0.0.1:$((BASE_PORT + 10))/cluster" | python3 -c 'import json,sys; print((json.load(sys.stdin).get("controller") or {}).get("leader") or "")' 2>/dev/null || true)
    [[ "$leader" == node-* ]] && curl -sf -o /dev/null "http://127.0.0.1:$((BASE_PORT + 10 * ${leader#node-}))/queues" && break
    sleep 0.1
done
l=${leader#node-}
f=$((l % 3 + 1))
to_leader="tern://127.0.0.1:$((BASE_PORT + 10 * l + 1))"
via_follower="tern://127.0.0.1:$((BASE_PORT + 10 * f + 1))"
echo "leader node-$l, follower node-$f"
for batch in 100 1000; do
    echo "== produce, batches of $batch: to the leader"
    "$BIN/tern-bench" produce --server "$to_leader" --queue "p$batch-l" --count "$COUNT" --batch "$batch" --connections 4 --quiet
    echo "== produce, batches of $batch: through the follower (forwarded)"
    "$BIN/tern-bench" produce --server "$via_follower" --stay-on-node --queue "p$batch-f" --count "$COUNT" --batch "$batch" --connections 4 --quiet
done
echo "== receive + ack, batches of 100: from the leader"
"$BIN/tern-bench" consume --server "$to_leader" --queue "p100-l" --count "$COUNT" --batch 100 --connections 4 --quiet
echo "== receive + ack, batches of 100: through the follower (forwarded)"
"$BIN/tern-bench" consume --server "$via_follower" --stay-on-node --queue "p100-f" --count "$COUNT" --batch 100 --connections 4 --quiet
echo "forwarded requests on node-$f: $(curl -s "http://127.0.0.1:$((BASE_PORT + 10 * f))/metrics" | grep -E '^tern_cluster_forwarded_requests_total|^tern_binary_forward_failures_total' | tr '\n' ' ')"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
