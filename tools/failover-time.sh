#!/usr/bin/env bash
# Failover time of a 3-node cluster (docs/performance.md, "Cluster"): from `kill -9` of the data
# group's leader to the first acknowledged write on the new leader, over KILLS kills.
#
#   tools/failover-time.sh [BIN_DIR] [KILLS]
#   tools/failover-time.sh .build-release/release 20
#
# Starts `tools/cluster start 3` in a temporary directory, creates a queue, then KILLS times: finds
# the leader (GET /cluster), kills it with SIGKILL, and sends `POST /queues/failover/messages` to
# the two others in turn every 10 ms until one answers 201 (forwarded or served); the time from the
# kill to that answer is one sample. The killed node is restarted and the next round waits until
# it serves again. Prints every sample and the percentiles (nearest rank).
set -euo pipefail

BIN=${1:-.build-release/release}
KILLS=${2:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$(mktemp -d /tmp/tern-failover.XXXXXX)
export TERN_BIN_DIR=$(cd "$BIN" && pwd)
BASE_PORT=${BASE_PORT:-18000}

cleanup() { "$ROOT/tools/cluster" stop "$DIR" >/dev/null 2>&1 || true; [[ -n "${KEEP:-}" ]] && echo "kept $DIR" || rm -rf "$DIR"; }
trap cleanup EXIT

url() { echo "http://127.0.0.1:$((BASE_PORT + 10 * $1))"; }
now_ms() { date +%s%3N; }
leader() { # prints the leader's number (1..3) once one serves
    for _ in $(seq 1 600); do
        for i in 1 2 3; do
            local id
            id=$(curl -s --max-time 1 "$(url "$i")/cluster" | python3 -c 'import json,sys; print((json.load(sys.stdin).get("controller") or {}).get("leader") or "")' 2>/dev/null || true)
            if [[ "$id" == node-* ]] && curl -sf --max-time 1 -o /dev/null "$(url "${id#node-}")/queues"; then echo "${id#node-}"; return; fi
        done
        sleep 0.1
    done
    echo "no leader within 60 s" >&2; exit 1
}

"$ROOT/tools/cluster" start 3 "$DIR" --base-port "$BASE_PORT" -- --log-level warning >/dev/null
until curl -sf -o /dev/null -X PUT "$(url "$(leader)")/queues/failover"; do sleep 0.2; done

samples=()
for round in $(seq 1 "$KILLS"); do
    l=$(leader)
    pid=$(cat "$DIR/node-$l/ternd.pid")
    start=$(now_ms)
    kill -9 "$pid"
    others=(); for i in 1 2 3; do [[ $i != "$l" ]] && others+=("$i"); done
    k=0
    while true; do
        target=${others[$((k % 2))]}; k=$((k + 1))
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST -H 'Content-Type: application/json' \
            -d "{\"message\": \"round-$round\"}" "$(url "$target")/queues/failover/messages" || true)
        [[ "$code" == 201 ]] && break
        sleep 0.01
    done
    ms=$(($(now_ms) - start))
    samples+=("$ms")
    echo "kill $round of node-$l: first acknowledged write after $ms ms"
    "$ROOT/tools/cluster" start 3 "$DIR" --base-port "$BASE_PORT" -- --log-level warning >/dev/null  # restarts the killed node only
done

printf '%s\n' "${samples[@]}" | sort -n | awk '{ v[NR] = $1 } END {
    n = NR
    split("50 90 99 100", ps, " ")
    for (k = 1; k <= 4; k++) { r = int((ps[k] / 100) * n + 0.999999); if (r < 1) r = 1; printf "p%s %d ms  ", ps[k], v[r] }
    printf "(n=%d)\n", n }'
