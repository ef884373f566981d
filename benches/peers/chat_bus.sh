#!/usr/bin/env bash
# loadgen chat against one weft chat process, and against the same room split over two
# weft processes joined by the Redis bus (issue 14's case).
#
#   one:  weft serve chat --cores 2                         (cores 0,1), clients all on it
#   bus:  weft serve chat --cores 1 --bus redis://…/ROOM    on core 0
#         weft serve chat --cores 1 --bus redis://…/ROOM    on core 1
#         redis-server (unpinned); loadgen's clients alternate between the two processes
#
# Both setups have two server cores. loadgen expects every line at every client and
# times it end to end on one clock, so a line that crossed the bus is measured from the
# sender's intended send to its arrival at a client of the other process. Each cell runs
# closed loop (one line in flight per client) and open loop at RATE lines/s.
#
# The headline is server efficiency: deliveries per second of server CPU (weft's
# processes, and redis-server in the bus setup, user + system from /proc/PID/stat
# between the end of the warm-up and the end of the run).
#
# usage: benches/peers/chat_bus.sh   (ROUNDS=3 DURATION=5s WARMUP=1s CLIENTS=16 RATE=1000)
# env:   ROUNDS, DURATION, WARMUP, CLIENTS, RATE, BASE_PORT, SKIP_BUILD=1, OUT,
#        CARGO_TARGET_DIR
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CLIENTS=${CLIENTS:-16}
RATE=${RATE:-1000}
PORT=${BASE_PORT:-19400}
BENCH=chat_bus
# shellcheck source=benches/peers/common.sh
source "$(dirname "$0")/common.sh"

build_release
command -v redis-server >/dev/null || { log "needs redis-server (Debian package redis-server)"; exit 1; }

PIDS=()
stop_all() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
trap stop_all EXIT

# wait_log FILE TEXT: waits up to 20 s for TEXT in FILE.
wait_log() {
    for _ in $(seq 200); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    log "no '$2' in $1"; return 1
}

# listen_addr FILE: the HOST:PORT of the "listening on tcp:…" line.
listen_addr() { sed -n 's/^listening on tcp:\([^ ]*\) .*/\1/p' "$1" | head -1; }

ticks_of() { local t=0; for p in "$@"; do t=$((t + $(cpu_ticks "$p"))); done; echo "$t"; }

# start SETUP: starts the servers of SETUP; sets TARGETS.
start() {
    local setup=$1 tag=$2
    case $setup in
        one)
            RUST_LOG=info taskset -c 0,1 "$WEFT" serve chat tcp:0:interface=127.0.0.1 --cores 2 \
                >"$OUT/$tag-w.log" 2>&1 &
            PIDS+=($!)
            wait_log "$OUT/$tag-w.log" "listening on tcp:"
            TARGETS=$(listen_addr "$OUT/$tag-w.log")
            ;;
        bus)
            PORT=$((PORT + 1))
            redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
                >"$OUT/$tag-redis.log" 2>&1 &
            PIDS+=($!)
            wait_log "$OUT/$tag-redis.log" "Ready to accept connections"
            local addrs=()
            for core in 0 1; do
                RUST_LOG=info taskset -c "$core" "$WEFT" serve chat tcp:0:interface=127.0.0.1 --cores 1 \
                    --bus "redis://127.0.0.1:$PORT/bench" >"$OUT/$tag-w$core.log" 2>&1 &
                PIDS+=($!)
                wait_log "$OUT/$tag-w$core.log" "listening on tcp:"
                wait_log "$OUT/$tag-w$core.log" "bus: subscribed"
                wait_log "$OUT/$tag-w$core.log" "bus: publishing"
                addrs+=("$(listen_addr "$OUT/$tag-w$core.log")")
            done
            TARGETS=$(IFS=,; echo "${addrs[*]}")
            ;;
    esac
}

for round in $(seq 1 "$ROUNDS"); do
    if (( round % 2 )); then order=(one bus); else order=(bus one); fi
    for setup in "${order[@]}"; do
        for load in closed open; do
            tag="$setup.$load.$round"
            start "$setup" "$tag"
            args=(chat --target "$TARGETS" --connections "$CLIENTS" --duration "$DURATION"
                  --warmup "$WARMUP" --drain 10s --quiet --json "$OUT/$tag.json")
            [[ $load == open ]] && args+=(--rate "$RATE")
            "$LOADGEN" "${args[@]}" >"$OUT/$tag.txt" 2>&1 &
            lg=$!
            sleep "$(seconds "$WARMUP")"
            t0=$(ticks_of "${PIDS[@]}")
            wait "$lg" || log "$tag: loadgen reported errors (see $OUT/$tag.txt)"
            t1=$(ticks_of "${PIDS[@]}")
            echo "$((t1 - t0)) $(getconf CLK_TCK)" >"$OUT/$tag.cpu"
            stop_all
            log "$tag: $(grep -m1 deliveries "$OUT/$tag.txt" || true)"
        done
    done
done

python3 - "$OUT" "$CLIENTS" "$RATE" <<'PY'
import json, os, statistics, sys
out, clients, rate = sys.argv[1], sys.argv[2], sys.argv[3]
print(f"loadgen chat, {clients} clients, 64-byte lines: medians over the rounds\n")
print(f"{'setup':<5} {'load':<14} {'deliveries/s of server CPU':>27} {'deliveries/s':>13} "
      f"{'p50 us':>8} {'p99 us':>8} {'errors':>7} {'rounds':>6}")
for setup in ("one", "bus"):
    for load in ("closed", "open"):
        eff, dps, p50, p99, errs = [], [], [], [], 0
        r = 1
        while os.path.exists(f"{out}/{setup}.{load}.{r}.json"):
            rep = json.load(open(f"{out}/{setup}.{load}.{r}.json"))
            ticks, hz = map(int, open(f"{out}/{setup}.{load}.{r}.cpu").read().split())
            if ticks > 0:
                eff.append(rep["deliveries"] / (ticks / hz))
            dps.append(rep["deliveries_per_s"])
            p50.append(rep["latency_us"]["p50"]); p99.append(rep["latency_us"]["p99"])
            errs += rep["error_count"]
            r += 1
        if not dps:
            continue
        name = "closed, depth 1" if load == "closed" else f"open {rate}/s"
        e = f"{statistics.median(eff):,.0f}" if eff else "-"
        print(f"{setup:<5} {name:<14} {e:>27} {statistics.median(dps):>13,.0f} "
              f"{statistics.median(p50):>8.0f} {statistics.median(p99):>8.0f} {errs:>7} {len(dps):>6}")
PY
echo "reports in $OUT" >&2
