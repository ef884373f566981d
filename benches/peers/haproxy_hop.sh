#!/usr/bin/env bash
# weft echo with and without an HAProxy hop in front (issue 14's "through HAProxy").
#
#   direct: loadgen ─► weft serve echo tcp:PORT
#   hop:    loadgen ─► haproxy (mode tcp, send-proxy-v2, nbthread 1) ─► weft serve echo haproxy:tcp:PORT
#
# weft runs one shard on SERVER_CPU (default 0); HAProxy and loadgen share the other core
# (LOADGEN_CPU, default 1), since this is a 2-core machine. The HAProxy configuration is
# generated into OUT (the one docs/scale-out.md shows, with the ports filled in). Setups
# alternate within each round, the order rotating; each cell starts fresh processes.
# Each cell runs closed loop (CONNS connections, one 64-byte request in flight on each)
# and open loop at RATE requests/s.
#
# Reported: requests/s, p50 and p99 from loadgen; weft's server efficiency (requests per
# second of weft's CPU); and HAProxy's CPU per request, from /proc/PID/stat between the
# end of the warm-up and the end of the run.
#
# usage: benches/peers/haproxy_hop.sh   (ROUNDS=3 DURATION=5s WARMUP=1s CONNS=16 RATE=10000)
# env:   ROUNDS, DURATION, WARMUP, CONNS, RATE, SERVER_CPU, LOADGEN_CPU, BASE_PORT,
#        SKIP_BUILD=1, OUT, CARGO_TARGET_DIR
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONNS=${CONNS:-16}
RATE=${RATE:-10000}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PORT=${BASE_PORT:-19500}
BENCH=haproxy_hop
# shellcheck source=benches/peers/common.sh
source "$(dirname "$0")/common.sh"

build_release
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[[ -x $HAPROXY ]] || { log "needs haproxy (Debian package haproxy)"; exit 1; }

WEFT_PID= HAPROXY_PID=
stop_all() {
    for p in $WEFT_PID $HAPROXY_PID; do kill "$p" 2>/dev/null || true; done
    for p in $WEFT_PID $HAPROXY_PID; do wait "$p" 2>/dev/null || true; done
    WEFT_PID= HAPROXY_PID=
}
trap stop_all EXIT

listening() { grep -qi ":$(printf '%04X' "$1") 00000000:0000 0A" /proc/net/tcp; }
wait_listening() {
    for _ in $(seq 200); do listening "$1" && return 0; sleep 0.1; done
    log "nothing listens on $1"; return 1
}

# start SETUP TAG: starts weft (and HAProxy); sets ADDR (where loadgen connects).
start() {
    local setup=$1 tag=$2 wport front
    PORT=$((PORT + 2)); wport=$PORT; front=$((PORT + 1))
    local ep="tcp:$wport:interface=127.0.0.1"
    [[ $setup == hop ]] && ep="haproxy:$ep"
    taskset -c "$SERVER_CPU" "$WEFT" serve echo "$ep" --cores 1 >"$OUT/$tag-weft.log" 2>&1 &
    WEFT_PID=$!
    wait_listening "$wport"
    ADDR=127.0.0.1:$wport
    if [[ $setup == hop ]]; then
        cat >"$OUT/$tag-haproxy.cfg" <<CFG
global
  maxconn 2000
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$front
  default_backend be
backend be
  server w0 127.0.0.1:$wport send-proxy-v2
CFG
        taskset -c "$LOADGEN_CPU" "$HAPROXY" -db -f "$OUT/$tag-haproxy.cfg" >"$OUT/$tag-haproxy.log" 2>&1 &
        HAPROXY_PID=$!
        wait_listening "$front"
        ADDR=127.0.0.1:$front
    fi
}

SETUPS=(direct hop)
for round in $(seq 1 "$ROUNDS"); do
    if (( round % 2 )); then order=(direct hop); else order=(hop direct); fi
    for setup in "${order[@]}"; do
        for load in closed open; do
            tag="$setup.$load.$round"
            start "$setup" "$tag"
            args=(echo --target "$ADDR" --connections "$CONNS" --size 64 --duration "$DURATION"
                  --warmup "$WARMUP" --cpus "$LOADGEN_CPU" --quiet --json "$OUT/$tag.json")
            [[ $load == open ]] && args+=(--rate "$RATE")
            "$LOADGEN" "${args[@]}" >"$OUT/$tag.txt" 2>&1 &
            lg=$!
            sleep "$(seconds "$WARMUP")"
            w0=$(cpu_ticks "$WEFT_PID"); h0=0
            [[ -n $HAPROXY_PID ]] && h0=$(cpu_ticks "$HAPROXY_PID")
            wait "$lg" || log "$tag: loadgen reported errors (see $OUT/$tag.txt)"
            w1=$(cpu_ticks "$WEFT_PID"); h1=0
            [[ -n $HAPROXY_PID ]] && h1=$(cpu_ticks "$HAPROXY_PID")
            echo "$((w1 - w0)) $((h1 - h0)) $(getconf CLK_TCK)" >"$OUT/$tag.cpu"
            stop_all
            log "$tag: $(sed -n 2p "$OUT/$tag.txt")"
        done
    done
done

python3 - "$OUT" "$CONNS" "$RATE" <<'PY'
import json, os, statistics, sys
out, conns, rate = sys.argv[1], sys.argv[2], sys.argv[3]
print(f"loadgen echo, {conns} connections, 64-byte requests, weft on one core: medians over the rounds\n")
print(f"{'path':<7} {'load':<15} {'req/s of weft CPU':>18} {'req/s':>9} {'p50 us':>8} {'p99 us':>8} "
      f"{'haproxy us CPU/req':>19} {'errors':>7} {'rounds':>6}")
for setup in ("direct", "hop"):
    for load in ("closed", "open"):
        eff, rps, p50, p99, hcost, errs = [], [], [], [], [], 0
        r = 1
        while os.path.exists(f"{out}/{setup}.{load}.{r}.json"):
            rep = json.load(open(f"{out}/{setup}.{load}.{r}.json"))
            w, h, hz = map(int, open(f"{out}/{setup}.{load}.{r}.cpu").read().split())
            if w > 0:
                eff.append(rep["requests"] / (w / hz))
            if rep["requests"]:
                hcost.append(h / hz / rep["requests"] * 1e6)
            rps.append(rep["throughput_rps"])
            p50.append(rep["latency_us"]["p50"]); p99.append(rep["latency_us"]["p99"])
            errs += rep["error_count"]
            r += 1
        if not rps:
            continue
        name = "closed, depth 1" if load == "closed" else f"open {rate}/s"
        e = f"{statistics.median(eff):,.0f}" if eff else "-"
        hc = f"{statistics.median(hcost):.1f}" if setup == "hop" else "-"
        print(f"{setup:<7} {name:<15} {e:>18} {statistics.median(rps):>9,.0f} "
              f"{statistics.median(p50):>8.0f} {statistics.median(p99):>8.0f} {hc:>19} {errs:>7} {len(rps):>6}")
PY
echo "reports in $OUT" >&2
