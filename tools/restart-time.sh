#!/usr/bin/env bash
# Restart-to-serving after SIGKILL, and memory, with many messages stored (docs/performance.md (d), (e)).
#
#   tools/restart-time.sh [BIN_DIR] [MESSAGES] [BODY_BYTES]
#   tools/restart-time.sh .build-release/release 10000000 100
#
# Fills one queue with MESSAGES messages through `tern-bench produce` (binary protocol, batches of
# 1,000, 4 connections), receives 1,000 of them with a 1 s visibility timeout (so that the restart
# finds expired deliveries to return), reports the broker's memory, kills it with SIGKILL,
# restarts it and reports the time until a receive over HTTP succeeds, then the memory again.
# Memory: VmRSS (all resident pages, including LMDB's file-backed map) and RssAnon (the heap and
# other anonymous memory: what the process itself allocated).
set -euo pipefail

BIN=${1:-.build-release/release}
MESSAGES=${2:-10000000}
SIZE=${3:-100}
HTTP=127.0.0.1:7480
BINARY=127.0.0.1:7481
DIR=$(mktemp -d /tmp/tern-restart.XXXXXX)
PID=

cleanup() {
    if [ -n "$PID" ]; then kill -9 "$PID" 2>/dev/null || true; fi
    rm -rf "$DIR"
}
trap cleanup EXIT

start() {
    "$BIN/ternd" --data-dir "$DIR" --http "$HTTP" --binary "$BINARY" --log-level warning 2>>"$DIR/ternd.log" &
    PID=$!
}

now_ms() { date +%s%3N; }

serving() { curl -sf "http://$HTTP/queues/restart/messages?batch_size=1&visibility_timeout=0" >/dev/null 2>&1; }

memory() {
    local rss anon
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")
    anon=$(awk '/^RssAnon/ {print $2}' "/proc/$PID/status")
    echo "$1: VmRSS $((rss / 1024)) MiB, RssAnon (heap and other anonymous memory) $((anon / 1024)) MiB"
}

start
until curl -sf "http://$HTTP/health" >/dev/null 2>&1; do sleep 0.01; done
curl -sf -X PUT "http://$HTTP/queues/restart" -d '{}' >/dev/null
fill_start=$(now_ms)
"$BIN/tern-bench" produce --server "tern://$BINARY" --queue restart --count "$MESSAGES" --message-size "$SIZE" \
    --batch 1000 --connections 4 --quiet
echo "filled $MESSAGES messages of $SIZE B in $(( ($(now_ms) - fill_start) / 1000 )) s; data directory $(du -sh "$DIR" | cut -f1)"
for _ in $(seq 100); do
    curl -sf "http://$HTTP/queues/restart/messages?batch_size=10&visibility_timeout=1" >/dev/null
done
memory "before the kill"

kill -9 "$PID"
wait "$PID" 2>/dev/null || true
sleep 1.5   # the 1,000 deliveries' visibility timeouts pass while the broker is down
restart_start=$(now_ms)
start
until serving; do sleep 0.002; done
restart_ms=$(( $(now_ms) - restart_start ))
echo "restart to serving (process start to the first successful receive): $restart_ms ms"
ready=$(curl -sf "http://$HTTP/queues/restart" | sed -E 's/.*"ready":([0-9]+).*/\1/')
echo "ready after the restart: $ready of $MESSAGES"
memory "after the restart"
