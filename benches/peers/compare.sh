#!/usr/bin/env bash
# weft's echo server against its peers (a C liburing server, plain glommio, tokio, Twisted),
# on this machine.
#
# Each server runs pinned to one core (SERVER_CPU, default 0) and loadgen to another
# (LOADGEN_CPU, default 1). Servers alternate within each round, the order rotating from
# round to round, so that a noisy neighbour hurts them all alike; each cell starts a fresh
# server on a fresh port.
#
# The headline is server efficiency: round trips per second of server CPU, that is the
# requests loadgen completed over the server's CPU time (user + system of all its threads,
# from /proc/PID/stat, read when the warm-up ends and when loadgen is done). It does not
# depend on whether the server or the generator set the pace, which on a 2-core machine
# throughput does. Printed per cell: the median efficiency over the rounds, the ratios
# weft/tokio and weft/uring-c, and issue 10's target for the cell; then throughput and
# p99 response time with the same ratios.
#
# usage: benches/peers/compare.sh            (ROUNDS=3 DURATION=2s WARMUP=0.5s by default)
# env:   ROUNDS, DURATION, WARMUP, SERVER_CPU, LOADGEN_CPU, BASE_PORT, WEFT_BIN, SKIP_BUILD=1,
#        OUT (directory for the JSON reports, default a temporary one), CARGO_TARGET_DIR,
#        ONLY_CASES / ONLY_SERVERS (space-separated names, e.g. "pp64-c16 pp64-c256" and
#        "weft tokio uring-c": more rounds of the cells that matter in the same time;
#        ONLY_SERVERS may also name weft-metrics, weft with its Prometheus exporter on,
#        and weft-control, the weft server again (the noise floor between two columns
#        of one server), which are not run by default;
#        ONLY_CASES may also name line64-c16, the line-framed case, which is not run
#        by default)
# The weft column is skipped, with a message, when the weft binary is missing or does not
# start; the uring-c column (benches/peers/uring_echo.c, built here with gcc and Debian's
# liburing-dev, installed with apt-get when missing and running as root) when it cannot be
# built; the Twisted column appears only when `python3 -c 'import twisted'` works.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-2s}
WARMUP=${WARMUP:-0.5s}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PORT=${BASE_PORT:-19100}
OUT=${OUT:-$(mktemp -d /tmp/weft-compare.XXXXXX)}
mkdir -p "$OUT"

log() { echo "compare: $*" >&2; }

if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building loadgen and the peers (release)"
    (cd "$ROOT" && cargo build --release -q -p loadgen --bin loadgen --example tokio_echo --example glommio_echo) >&2
    (cd "$ROOT" && cargo build --release -q --bin weft) >&2 2>/dev/null || log "could not build the weft binary"
fi
URING_SRC=$ROOT/benches/peers/uring_echo.c
URING=$TARGET/release/uring_echo
# build_uring: compiles the C reference (and installs liburing-dev if it can); 1 if it cannot.
build_uring() {
    if [[ ! -f /usr/include/liburing.h ]]; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            log "installing liburing-dev for the C reference server"
            { apt-get install -y -qq liburing-dev || { apt-get update -qq && apt-get install -y -qq liburing-dev; }; } \
                >"$OUT/apt-liburing.log" 2>&1 || { log "apt-get could not install liburing-dev (see $OUT/apt-liburing.log)"; return 1; }
        else
            log "liburing.h is missing (Debian: apt-get install liburing-dev)"
            return 1
        fi
    fi
    mkdir -p "$(dirname "$URING")"
    gcc -O2 -Wall -o "$URING" "$URING_SRC" -luring >&2
}
if [[ -z "${SKIP_BUILD:-}" || ! -x "$URING" || "$URING_SRC" -nt "$URING" ]]; then
    build_uring || log "could not build $URING_SRC"
fi
LOADGEN=$TARGET/release/loadgen
TOKIO=$TARGET/release/examples/tokio_echo
GLOMMIO=$TARGET/release/examples/glommio_echo
WEFT=${WEFT_BIN:-}
if [[ -z "$WEFT" ]]; then
    for w in "$TARGET/release/weft" "$ROOT/target/release/weft"; do
        [[ -x "$w" ]] && { WEFT=$w; break; }
    done
fi
for b in "$LOADGEN" "$TOKIO" "$GLOMMIO"; do
    [[ -x "$b" ]] || { log "missing $b (build failed?)"; exit 1; }
done

SERVERS=()
if [[ -n "$WEFT" && -x "$WEFT" ]]; then
    SERVERS+=(weft)
else
    log "weft binary not found (looked in $TARGET/release and $ROOT/target/release): skipping the weft column"
fi
if [[ -x "$URING" ]]; then
    SERVERS+=(uring-c)
else
    log "no C reference server: skipping the uring-c column"
fi
SERVERS+=(glommio tokio)
if python3 -c 'import twisted' 2>/dev/null; then
    SERVERS+=(twisted)
else
    log "python3 cannot import twisted: no Twisted column"
fi
if [[ -n "${ONLY_SERVERS:-}" ]]; then
    # weft-metrics (weft with --metrics on, to measure what the exporter costs) and
    # weft-control (the very same server as weft, a second time: the noise floor of
    # a weft/weft-metrics comparison) are columns only when asked for by name.
    [[ -n "$WEFT" && -x "$WEFT" ]] && SERVERS+=(weft-metrics weft-control)
    kept=()
    for s in "${SERVERS[@]}"; do [[ " $ONLY_SERVERS " == *" $s "* ]] && kept+=("$s"); done
    SERVERS=("${kept[@]}")
fi

# name | loadgen options | weft framing. The first four are issue 10's target cells.
ALL_CASES=(
    "pp64-c1|--size 64 --connections 1|raw"
    "pp64-c16|--size 64 --connections 16|raw"
    "pp64-c256|--size 64 --connections 256|raw"
    "pp4k-c16|--size 4096 --connections 16|raw"
    "line64-c16|--size 64 --connections 16 --framing line|line"
)
CASES=("${ALL_CASES[@]:0:4}")
if [[ -n "${ONLY_CASES:-}" ]]; then
    kept=()
    for c in "${ALL_CASES[@]}"; do [[ " $ONLY_CASES " == *" ${c%%|*} "* ]] && kept+=("$c"); done
    CASES=("${kept[@]}")
fi

SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT

# start_server NAME PORT FRAMING: starts it pinned, waits until it accepts; 1 if it did not.
start_server() {
    local name=$1 port=$2 framing=$3
    case $name in
        weft | weft-control)
            local extra=()
            [[ $framing != raw ]] && extra=(--framing "$framing")
            taskset -c "$SERVER_CPU" "$WEFT" serve echo "tcp:$port:interface=127.0.0.1" --cores 1 "${extra[@]}" \
                >"$OUT/$name-$port.log" 2>&1 &
            ;;
        weft-metrics)
            local extra=()
            [[ $framing != raw ]] && extra=(--framing "$framing")
            taskset -c "$SERVER_CPU" "$WEFT" serve echo "tcp:$port:interface=127.0.0.1" --cores 1 "${extra[@]}" \
                --metrics "tcp:0:interface=127.0.0.1" >"$OUT/$name-$port.log" 2>&1 &
            ;;
        uring-c) taskset -c "$SERVER_CPU" "$URING" "$port" >"$OUT/$name-$port.log" 2>&1 & ;;
        glommio) taskset -c "$SERVER_CPU" "$GLOMMIO" "$port" "$SERVER_CPU" >"$OUT/$name-$port.log" 2>&1 & ;;
        tokio) taskset -c "$SERVER_CPU" "$TOKIO" "$port" "$SERVER_CPU" >"$OUT/$name-$port.log" 2>&1 & ;;
        twisted) taskset -c "$SERVER_CPU" python3 "$ROOT/benches/peers/twisted_echo.py" "$port" >"$OUT/$name-$port.log" 2>&1 & ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# seconds 0.5s|500ms|2: the duration in seconds, for sleep(1).
seconds() {
    case $1 in
        *ms) python3 -c "print(${1%ms} / 1000)" ;;
        *s) echo "${1%s}" ;;
        *) echo "$1" ;;
    esac
}

# cpu_ticks PID: utime + stime of the whole process, in clock ticks (0 if it is gone).
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) } # the fields after the command name, which may hold spaces
    read -r -a f <<<"$stat"
    echo $((f[11] + f[12])) # fields 14 and 15 of proc(5), counted from field 3
}

declare -A DEAD=()
for round in $(seq 1 "$ROUNDS"); do
    # Rotate the order of the servers each round.
    n=${#SERVERS[@]}
    order=()
    for i in $(seq 0 $((n - 1))); do order+=("${SERVERS[$(((i + round - 1) % n))]}"); done
    for spec in "${CASES[@]}"; do
        IFS='|' read -r case opts framing <<<"$spec"
        for server in "${order[@]}"; do
            [[ -n "${DEAD[$server]:-}" ]] && continue
            PORT=$((PORT + 1))
            if ! start_server "$server" "$PORT" "$framing"; then
                log "$server did not start (see $OUT/$server-$PORT.log): skipping its column"
                DEAD[$server]=1
                stop_server
                continue
            fi
            json="$OUT/$server.$case.$round.json"
            # shellcheck disable=SC2086
            taskset -c "$LOADGEN_CPU" "$LOADGEN" echo --target "127.0.0.1:$PORT" $opts \
                --duration "$DURATION" --warmup "$WARMUP" --cpus "$LOADGEN_CPU" --quiet \
                --json "$json" >"$OUT/$server.$case.$round.txt" 2>&1 &
            lg=$!
            # The server's CPU time (all its threads, user + system) over the measured
            # phase: read once the warm-up is over and again when loadgen is done.
            sleep "$(seconds "$WARMUP")"
            t0=$(cpu_ticks "$SERVER_PID")
            wait "$lg" || log "$server $case round $round: loadgen reported errors (see $OUT/$server.$case.$round.txt)"
            t1=$(cpu_ticks "$SERVER_PID")
            echo "$((t1 - t0)) $(getconf CLK_TCK)" >"$OUT/$server.$case.$round.cpu"
            stop_server
            log "round $round $case $server: $(head -2 "$OUT/$server.$case.$round.txt" | tail -1)"
        done
    done
done

python3 - "$OUT" "${SERVERS[@]}" <<'PY'
import glob, json, os, statistics, sys
out, servers = sys.argv[1], sys.argv[2:]
cases = [c for c in ["pp64-c1", "pp64-c16", "pp64-c256", "pp4k-c16", "line64-c16"]
         if glob.glob(os.path.join(out, f"*.{c}.*.json"))]
titles = {
    "pp64-c1": "64 B ping-pong, 1 conn",
    "pp64-c16": "64 B ping-pong, 16 conns",
    "pp64-c256": "64 B ping-pong, 256 conns",
    "pp4k-c16": "4 KiB ping-pong, 16 conns",
    "line64-c16": "64 B line echo, 16 conns",
}
# Issue 10's targets for weft's efficiency: (least weft/tokio, least weft/uring-c).
targets = {
    "pp64-c1": (1.0, None),
    "pp64-c16": (1.15, 0.95),
    "pp64-c256": (1.15, 0.95),
    "pp4k-c16": (1.15, None),
}
def cell(server, case):
    runs, eff = [], []  # eff: (round trips per server CPU second, share of one core)
    for f in sorted(glob.glob(os.path.join(out, f"{server}.{case}.*.json"))):
        with open(f) as fh:
            r = json.load(fh)
        runs.append(r)
        try:
            with open(f[: -len(".json")] + ".cpu") as fh:
                ticks, hz = (int(x) for x in fh.read().split())
        except (OSError, ValueError):
            continue
        if r["requests"] and ticks > 0:
            eff.append((r["requests"] / (ticks / hz), ticks / hz / r["duration_s"]))
    if not runs:
        return None
    return {
        "eff": statistics.median(e[0] for e in eff) if eff else None,
        "util": statistics.median(e[1] for e in eff) if eff else None,
        "rps": statistics.median(r["throughput_rps"] for r in runs),
        "p99": statistics.median(r["latency_us"]["p99"] for r in runs),
        "errors": sum(r["error_count"] for r in runs),
        "cpu": statistics.median(r["loadgen"]["cpu_utilisation"] for r in runs),
        "n": len(runs),
    }
def ratio(a, b, key):
    if a is None or b is None or not a.get(key) or not b.get(key):
        return None
    return a[key] / b[key]
def fr(x):
    return "—" if x is None else f"{x:.2f}"
def fmt_eff(c):
    if c is None or c["eff"] is None:
        return "—"
    return f"{c['eff']/1000:.1f}k ({c['util']*100:.0f}% busy)"
def fmt_tp(c):
    if c is None:
        return "—"
    s = f"{c['rps']/1000:.1f}k/s, p99 {c['p99']:.0f} µs"
    if c["errors"]:
        s += f" ({c['errors']} errors)"
    return s
def verdict(case, t, u):
    want = targets.get(case)
    if want is None:
        return "—"
    parts, ok, known = [], True, True
    for got, least, peer in ((t, want[0], "tokio"), (u, want[1], "C")):
        if least is None:
            continue
        parts.append(f"≥ {least:.2f}× {peer}")
        if got is None:
            known = False
        elif got < least:
            ok = False
    head = "met" if ok and known else ("not met" if not ok else "unknown")
    return f"{head} ({', '.join(parts)})"
cols = servers
table = {case: {s: cell(s, case) for s in cols} for case in cases}
print("Server efficiency: round trips per second of server CPU (requests / server user+system seconds), and how busy the server's core was:\n")
print("| case | " + " | ".join(cols) + " | weft/tokio | weft/uring-c | target |")
print("|---" * (len(cols) + 4) + "|")
for case in cases:
    cells = table[case]
    t = ratio(cells.get("weft"), cells.get("tokio"), "eff")
    u = ratio(cells.get("weft"), cells.get("uring-c"), "eff")
    row = [titles[case]] + [fmt_eff(cells[s]) for s in cols] + [fr(t), fr(u), verdict(case, t, u)]
    print("| " + " | ".join(row) + " |")
print("\nThroughput (requests/s) and p99 response time:\n")
print("| case | " + " | ".join(cols) + " | weft/tokio | weft/uring-c |")
print("|---" * (len(cols) + 3) + "|")
busy = []
for case in cases:
    cells = table[case]
    for s, c in cells.items():
        if c and c["cpu"] > 0.9:
            busy.append(f"{s} {case} ({c['cpu']*100:.0f}%)")
    row = [titles[case]] + [fmt_tp(cells[s]) for s in cols]
    row += [fr(ratio(cells.get("weft"), cells.get("tokio"), "rps")),
            fr(ratio(cells.get("weft"), cells.get("uring-c"), "rps"))]
    print("| " + " | ".join(row) + " |")
n = max((c["n"] for case in cases for c in table[case].values() if c), default=0)
print(f"\nMedians of {n} rounds. Ratios are weft's figure over the peer's: above 1, weft is ahead.")
if busy:
    print("loadgen was busy >90% of its core in: " + ", ".join(busy) + " (it may have set the throughput there; efficiency is unaffected).")
PY
log "reports in $OUT"
