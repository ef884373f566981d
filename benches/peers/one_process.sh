#!/usr/bin/env bash
# How much one weft process handles (docs/scale-out.md, "One process"): echo over many
# connections, and the chat room's deliveries, on one process of SHARDS shards.
#
#   echo: weft serve echo --cores SHARDS; loadgen echo, 64-byte requests, one in flight
#         per connection, for each connection count in CONNS (default 100 1000 5000)
#   chat: weft serve chat --cores SHARDS; loadgen chat, closed loop, for each client
#         count in CLIENTS (default 16 64)
#
# Reported: requests (or deliveries) per second, p50/p99, weft's CPU over the measured
# phase and requests per second of that CPU, and weft's resident memory at the end.
# loadgen runs two threads, unpinned: on a 2-core machine it shares the cores with weft.
#
# usage: benches/peers/one_process.sh   (DURATION=5s WARMUP=1s SHARDS=2)
# env:   DURATION, WARMUP, SHARDS, CONNS, CLIENTS, SKIP_BUILD=1, OUT, CARGO_TARGET_DIR
set -euo pipefail

DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
SHARDS=${SHARDS:-2}
CONNS=${CONNS:-100 1000 5000}
CLIENTS=${CLIENTS:-16 64}
BENCH=one_process
# shellcheck source=benches/peers/common.sh
source "$(dirname "$0")/common.sh"

build_release
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WEFT_PID=
stop_weft() {
    if [[ -n "$WEFT_PID" ]]; then
        kill "$WEFT_PID" 2>/dev/null || true
        wait "$WEFT_PID" 2>/dev/null || true
        WEFT_PID=
    fi
}
trap stop_weft EXIT

# start_weft SERVICE TAG: starts it; sets ADDR (where loadgen connects).
start_weft() {
    "$WEFT" serve "$1" tcp:0:interface=127.0.0.1 --cores "$SHARDS" >"$OUT/$2-weft.log" 2>&1 &
    WEFT_PID=$!
    for _ in $(seq 200); do
        ADDR=$(sed -n 's/^listening on tcp:\([^ ]*\) .*/\1/p' "$OUT/$2-weft.log" | head -1)
        [[ -n $ADDR ]] && return 0
        sleep 0.1
    done
    log "weft serve $1 did not start (see $OUT/$2-weft.log)"; return 1
}

# run TAG LOADGEN-ARGS...: one cell against the running weft.
run() {
    local tag=$1; shift
    "$LOADGEN" "$@" --target "$ADDR" --duration "$DURATION" --warmup "$WARMUP" \
        --threads 2 --quiet --json "$OUT/$tag.json" >"$OUT/$tag.txt" 2>&1 &
    local lg=$!
    sleep "$(seconds "$WARMUP")"
    local t0; t0=$(cpu_ticks "$WEFT_PID")
    wait "$lg" || log "$tag: loadgen reported errors (see $OUT/$tag.txt)"
    local t1; t1=$(cpu_ticks "$WEFT_PID")
    echo "$((t1 - t0)) $(getconf CLK_TCK) $(rss_kib "$WEFT_PID")" >"$OUT/$tag.cpu"
    log "$tag: $(sed -n 2p "$OUT/$tag.txt")"
}

for c in $CONNS; do
    start_weft echo "echo-$c"
    run "echo-$c" echo --connections "$c" --size 64
    stop_weft
done
for c in $CLIENTS; do
    start_weft chat "chat-$c"
    run "chat-$c" chat --connections "$c"
    stop_weft
done

python3 - "$OUT" "$SHARDS" $CONNS -- $CLIENTS <<'PY'
import json, sys
out, shards = sys.argv[1], sys.argv[2]
rest = sys.argv[3:]
conns, clients = rest[:rest.index("--")], rest[rest.index("--") + 1:]
print(f"one weft process, {shards} shards, 64-byte messages\n")
print(f"{'workload':<22} {'msgs/s':>10} {'msgs/s of weft CPU':>19} {'weft CPU':>9} {'p50 us':>8} {'p99 us':>8} {'weft RSS MiB':>13} {'errors':>7}")
def row(name, tag, key):
    rep = json.load(open(f"{out}/{tag}.json"))
    ticks, hz, rss = map(int, open(f"{out}/{tag}.cpu").read().split())
    cpu = ticks / hz
    n = rep[key]
    rate = n / rep["duration_s"]
    eff = f"{n / cpu:,.0f}" if cpu else "-"
    print(f"{name:<22} {rate:>10,.0f} {eff:>19} {cpu / rep['duration_s']:>8.2f}c "
          f"{rep['latency_us']['p50']:>8.0f} {rep['latency_us']['p99']:>8.0f} {rss / 1024:>13.1f} {rep['error_count']:>7}")
for c in conns:
    row(f"echo, {c} conns", f"echo-{c}", "requests")
for c in clients:
    row(f"chat, {c} clients", f"chat-{c}", "deliveries")
print("\nweft CPU: cores' worth of CPU time over the measured phase (2 = both cores all the time)")
PY
echo "reports in $OUT" >&2
