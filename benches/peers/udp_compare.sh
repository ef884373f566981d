#!/usr/bin/env bash
# weft's UDP echo against its peers: tokio (loadgen/examples/tokio_udp_echo.rs, a
# recv_from/send_to loop) and a C reference with recvmmsg/sendmmsg in batches of 64
# (benches/peers/mmsg_udp_echo.c), 64-byte datagrams over 64 flows (issue 12's case).
#
# Each server runs on one core (SERVER_CPU, default 0), loadgen on another
# (LOADGEN_CPU, default 1). Servers alternate within each round, the order rotating
# from round to round; each cell starts a fresh server on a fresh port.
#
# The headline is server efficiency: datagrams echoed per second of server CPU, that
# is the replies loadgen checked over the server's CPU time (user + system of all its
# threads, from /proc/PID/stat, read when the warm-up ends and when loadgen is done).
# On a 2-core machine throughput depends on who sets the pace; efficiency does not.
#
# usage: benches/peers/udp_compare.sh    (ROUNDS=3 DURATION=2s WARMUP=0.5s DEPTH=1)
# env:   ROUNDS, DURATION, WARMUP, DEPTH (datagrams in flight per flow), FLOWS,
#        SERVER_CPU, LOADGEN_CPU, BASE_PORT, SKIP_BUILD=1, OUT, CARGO_TARGET_DIR
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-2s}
WARMUP=${WARMUP:-0.5s}
DEPTH=${DEPTH:-1}
FLOWS=${FLOWS:-64}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PORT=${BASE_PORT:-19300}
BENCH=udp_compare
# shellcheck source=benches/peers/common.sh
source "$(dirname "$0")/common.sh"

build_release --example tokio_udp_echo
MMSG=$TARGET/release/mmsg_udp_echo
MMSG_SRC=$ROOT/benches/peers/mmsg_udp_echo.c
if [[ ! -x "$MMSG" || "$MMSG_SRC" -nt "$MMSG" ]]; then
    gcc -O2 -Wall -o "$MMSG" "$MMSG_SRC"
fi
TOKIO=$TARGET/release/examples/tokio_udp_echo
SERVERS=(weft tokio mmsg-c)

SERVER_PID=
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap stop_server EXIT

# start_server NAME PORT: starts it pinned and waits until it echoes a datagram.
start_server() {
    local name=$1 port=$2
    case $name in
        weft) taskset -c "$SERVER_CPU" "$WEFT" serve echo "udp:$port:interface=127.0.0.1" --cores 1 >"$OUT/$name-$port.log" 2>&1 & ;;
        tokio) taskset -c "$SERVER_CPU" "$TOKIO" "$port" "$SERVER_CPU" >"$OUT/$name-$port.log" 2>&1 & ;;
        mmsg-c) taskset -c "$SERVER_CPU" "$MMSG" "$port" >"$OUT/$name-$port.log" 2>&1 & ;;
    esac
    SERVER_PID=$!
    python3 - "$port" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
for _ in range(100):
    try:
        s.sendto(b"ping", ("127.0.0.1", int(sys.argv[1])))
        if s.recvfrom(16)[0] == b"ping":
            sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
}

n=${#SERVERS[@]}
for round in $(seq 1 "$ROUNDS"); do
    order=()
    for i in $(seq 0 $((n - 1))); do order+=("${SERVERS[$(((i + round - 1) % n))]}"); done
    for server in "${order[@]}"; do
        PORT=$((PORT + 1))
        if ! start_server "$server" "$PORT"; then
            log "$server did not start (see $OUT/$server-$PORT.log)"
            stop_server
            continue
        fi
        json="$OUT/$server.$round.json"
        taskset -c "$LOADGEN_CPU" "$LOADGEN" udp --target "127.0.0.1:$PORT" \
            --connections "$FLOWS" --depth "$DEPTH" --size 64 \
            --duration "$DURATION" --warmup "$WARMUP" --cpus "$LOADGEN_CPU" --quiet \
            --json "$json" >"$OUT/$server.$round.txt" 2>&1 &
        lg=$!
        sleep "$(seconds "$WARMUP")"
        t0=$(cpu_ticks "$SERVER_PID")
        wait "$lg" || log "$server round $round: loadgen reported errors (see $OUT/$server.$round.txt)"
        t1=$(cpu_ticks "$SERVER_PID")
        echo "$((t1 - t0)) $(getconf CLK_TCK)" >"$OUT/$server.$round.cpu"
        stop_server
        log "round $round $server: $(sed -n 2p "$OUT/$server.$round.txt")"
    done
done

python3 - "$OUT" "${SERVERS[@]}" <<'PY'
import json, os, statistics, sys
out, servers = sys.argv[1], sys.argv[2:]
rows = {}
for s in servers:
    eff, rps, p99, errs = [], [], [], []
    r = 1
    while os.path.exists(f"{out}/{s}.{r}.json"):
        rep = json.load(open(f"{out}/{s}.{r}.json"))
        ticks, hz = map(int, open(f"{out}/{s}.{r}.cpu").read().split())
        if rep["requests"] and ticks > 0:
            eff.append(rep["requests"] / (ticks / hz))
        rps.append(rep["throughput_rps"]); p99.append(rep["latency_us"]["p99"])
        errs.append(rep["error_count"])
        r += 1
    if rps:
        rows[s] = (statistics.median(eff) if eff else None, statistics.median(rps),
                   statistics.median(p99), sum(errs), len(rps))
print("64-byte datagrams, 64 flows, one server core: medians over the rounds\n")
print(f"{'server':<8} {'datagrams/s of server CPU':>26} {'datagrams/s':>12} {'p99 us':>9} {'errors':>7} {'rounds':>6}")
for s, (e, t, p, er, n) in rows.items():
    es = f"{e:,.0f}" if e else "-"
    print(f"{s:<8} {es:>26} {t:>12,.0f} {p:>9.0f} {er:>7} {n:>6}")
w = rows.get("weft")
for peer in ("tokio", "mmsg-c"):
    if w and w[0] and peer in rows and rows[peer][0]:
        print(f"weft/{peer} efficiency: {w[0] / rows[peer][0]:.2f}x")
PY
echo "reports in $OUT" >&2
