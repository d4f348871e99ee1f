#!/usr/bin/env bash
# ternd's anonymous memory (RssAnon of /proc/PID/status: heap, thread stacks, NIO buffers; not
# LMDB's file-backed map) against binary connections (issue 13, item 4). Prints one table.
#
#   tools/connection-memory.sh [BIN_DIR] [COUNTS] [SINGLE_COUNT]
#
# BIN_DIR holds ternd and tern-bench (default .build-release/release; build it with
# `swift build -c release --scratch-path .build-release`). COUNTS are the idle connection counts
# (default 1,64,1000,10000), SINGLE_COUNT the messages of the single-send run (default 200000).
#
# 1. starts ternd on a fresh data directory with its own ports (7450 HTTP, 7451 binary) and reads
#    its idle RssAnon;
# 2. `tern-bench connections`: for each count, opens that many idle binary connections (each
#    completes the ApiVersions handshake), reads RssAnon, closes them, reads it again; then the
#    same with 200 connections that each sent and received a batch of 1,000 × 1 KiB first;
# 3. busy runs, each followed by RssAnon right after it and 12 s later: single-message durable
#    sends of 1 KiB over 64 connections (`tern-bench produce --connections 64 --batch 1`), then
#    produce and receive + ack in batches of 1,000 over 4 connections (frames of 1 MiB);
# 4. again 64 idle connections after the busy runs.
# Each reading waits 3 s after the connections open (12 s after the batches), 12 s after they
# close (ternd trims its heap every 10 s by default, decision 121).
set -euo pipefail
BIN=${1:-.build-release/release}
COUNTS=${2:-1,64,1000,10000}
SINGLE_COUNT=${3:-200000}
WARM_COUNT=${TERN_MEMORY_WARM_COUNT:-200}
HTTP_PORT=${TERN_MEMORY_HTTP_PORT:-7450}
BINARY_PORT=${TERN_MEMORY_BINARY_PORT:-7451}
for tool in ternd tern-bench; do
    [[ -x "$BIN/$tool" ]] || { echo "no $BIN/$tool: build with swift build -c release --scratch-path .build-release" >&2; exit 1; }
done
# 10,000 connections need 10,000 descriptors in each process (ternd raises its own soft limit
# to the hard one); raise this shell's soft limit for tern-bench.
ulimit -n "$(ulimit -Hn)"
WORK_DIR=$(mktemp -d /tmp/tern-connection-memory.XXXXXX)
TERND_PID=
cleanup() {
    if [[ -n "$TERND_PID" ]]; then kill "$TERND_PID" 2>/dev/null || true; wait "$TERND_PID" 2>/dev/null || true; fi
    rm -rf "$WORK_DIR"
}
trap cleanup EXIT

rss_anon() { awk '/^RssAnon:/ { print $2 }' "/proc/$TERND_PID/status"; }

"$BIN/ternd" --data-dir "$WORK_DIR/data" --http "127.0.0.1:$HTTP_PORT" --binary "127.0.0.1:$BINARY_PORT" \
    --log-level warning ${TERN_MEMORY_TERND_ARGS:-} 2>"$WORK_DIR/ternd.log" &
TERND_PID=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$HTTP_PORT/health" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$HTTP_PORT/health" >/dev/null || { echo "ternd did not start:" >&2; cat "$WORK_DIR/ternd.log" >&2; exit 1; }

echo "ternd pid $TERND_PID, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN/tern-bench" connections --server "tern://127.0.0.1:$BINARY_PORT" --pid "$TERND_PID" --counts "$COUNTS"
echo
echo "connections that each sent a batch of 1,000 × 1 KiB and received + acknowledged 1,000 (1 MiB frames), then idle:"
"$BIN/tern-bench" connections --server "tern://127.0.0.1:$BINARY_PORT" --pid "$TERND_PID" --counts "$WARM_COUNT" --send-batch 1000 \
    --settle 12

# A busy run: its rate, then RssAnon right after it and 12 s later.
BUSY_ROWS=()
busy() {
    local label=$1
    shift
    "$BIN/tern-bench" "$@" --server "tern://127.0.0.1:$BINARY_PORT" --quiet --json >"$WORK_DIR/busy.json"
    local after calm rate
    after=$(rss_anon)
    sleep 12
    calm=$(rss_anon)
    rate=$(sed -n 's/.*"messages_per_second" *: *\([0-9.]*\).*/\1/p' "$WORK_DIR/busy.json" | cut -d. -f1)
    BUSY_ROWS+=("| $label | ${rate:-?} | $after | $calm |")
}
busy "single-message sends of 1 KiB, 64 connections, $SINGLE_COUNT messages" \
    produce --queue single --connections 64 --batch 1 --count "$SINGLE_COUNT"
busy "produce 1 KiB in batches of 1,000, 4 connections, 200,000 messages" \
    produce --queue batch --connections 4 --batch 1000 --count 200000
busy "receive + ack in batches of 1,000, 4 connections, 200,000 messages" \
    consume --queue batch --connections 4 --batch 1000 --count 200000
echo
echo "| busy run (in this order) | msg/s | RssAnon right after (KiB) | 12 s later (KiB) |"
echo "|---|---:|---:|---:|"
printf '%s\n' "${BUSY_ROWS[@]}"
echo
echo "after the busy runs:"
"$BIN/tern-bench" connections --server "tern://127.0.0.1:$BINARY_PORT" --pid "$TERND_PID" --counts 64
