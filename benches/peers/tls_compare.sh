#!/usr/bin/env bash
# TLS figures for weft's ssl: echo against the tokio-rustls peer (same rustls 0.23.46,
# ring provider, ECDSA P-256 certificate, TLS 1.3), each server on one core:
#   1. full TLS 1.3 handshakes per second of *server* CPU: `loadgen connect --tls`, C
#      handshakes in flight (every connect a full handshake, no resumption);
#   2. 64-byte ping-pong over TLS at 16 and 256 connections: `loadgen echo --tls`,
#      requests per second of server CPU (server efficiency);
#   3. server memory per idle TLS connection, with N connections held open by Python
#      (each past its handshake and one echo).
# Server CPU is utime + stime of the whole server process from /proc/PID/stat, read
# before and after each loadgen run. The server is pinned to SERVER_CPU (default 0),
# loadgen to LOADGEN_CPU (default 1).
#
# WEFT_B=path/to/another/weft adds it as a third server in every round (its own
# build of a change, or the same binary again to show the noise floor).
#
# Usage: [ROUNDS=3] [WEFT=path/to/weft] [WEFT_B=path] benches/peers/tls_compare.sh [SECONDS] [IDLE_CONNECTIONS] [HANDSHAKES_IN_FLIGHT]
# Needs: release builds of weft and loadgen (cargo build --release -p weft -p loadgen),
# openssl, python3; the peer is built from benches/peers/tokio_rustls_echo if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
idle=${2:-5000}
inflight=${3:-32}
server_cpu=${SERVER_CPU:-0}
loadgen_cpu=${LOADGEN_CPU:-1}
weft=${WEFT:-target/release/weft}
loadgen=target/release/loadgen
peer=benches/peers/tokio_rustls_echo/target/release/tokio-rustls-echo
[ -x "$weft" ] && [ -x "$loadgen" ] || {
    echo "build first: cargo build --release -p weft -p loadgen" >&2
    exit 1
}
if [ ! -x "$peer" ]; then
    (cd benches/peers/tokio_rustls_echo && cargo build --release --quiet)
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -addext basicConstraints=critical,CA:FALSE -keyout "$dir/server.pem" -out "$dir/cert.pem" 2>/dev/null
cat "$dir/cert.pem" >> "$dir/server.pem"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# efficiency NAME PID WHAT LOADGEN-ARGS...: one loadgen run, its count over server CPU.
efficiency() {
    local name=$1 pid=$2 what=$3 t0 t1
    shift 3
    t0=$(cpu_ticks "$pid")
    taskset -c "$loadgen_cpu" "$loadgen" "$@" --duration "${secs}s" --cpus "$loadgen_cpu" \
        --quiet --json "$dir/run.json" >"$dir/run.txt" 2>&1 ||
        echo "  ($name $what: loadgen reported errors: $(tr '\n' ' ' <"$dir/run.txt" | tail -c 300))"
    t1=$(cpu_ticks "$pid")
    python3 - "$name" "$what" "$t0" "$t1" "$hz" "$dir/run.json" <<'PY'
import json, sys
name, what, t0, t1, hz, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
r = json.load(open(path))
n, secs = r["requests"], r["duration_s"]
cpu = (t1 - t0) / hz
lat = r["latency_us"]
print(f"{name} | {what} | {n / secs:.0f}/s | server CPU {cpu:.2f} s ({cpu / secs:.0%} of a core) | "
      f"**{n / cpu if cpu else float('nan'):.0f} per server-CPU-second** | "
      f"p50 {lat['p50']:.0f} µs, p99 {lat['p99']:.0f} µs | "
      f"loadgen {r['loadgen']['cpu_utilisation']:.0%} busy | errors {r['error_count']}")
PY
}

# idle NAME PORT PID: bytes per idle TLS connection, IDLE of them held by Python.
idle_memory() {
    local name=$1 port=$2 pid=$3 before
    before=$(rss_kib "$pid")
    python3 - "$port" "$idle" "$dir/cert.pem" "$pid" "$name" "$before" <<'PY'
import socket, ssl, sys
port, n, ca, pid, name, before = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
ctx = ssl.create_default_context(cafile=ca)
held = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    held.append(ctx.wrap_socket(s, server_hostname="localhost"))
# One round trip on each, so every server session is past its handshake.
for t in held:
    t.sendall(b"x")
for t in held:
    t.recv(1)
after = int([l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0])
print(f"{name} | {n} idle TLS connections | RSS {before} -> {after} KiB | "
      f"**{(after - before) * 1024 / n:.0f} bytes per connection**")
PY
}

# start_weft / start_peer: a fresh server pinned to SERVER_CPU; sets PORT and PID.
start_weft() {
    local bin=${1:-$weft} log="$dir/weft-$RANDOM.log"
    taskset -c "$server_cpu" "$bin" serve echo --cores 1 \
        "ssl:0:interface=127.0.0.1:privateKey=$dir/server.pem:maxHandshakes=100000" 2>"$log" &
    PID=$!
    for _ in $(seq 100); do grep -q "listening on" "$log" 2>/dev/null && break; sleep 0.1; done
    PORT=$(sed -n 's/.*listening on tcp:127.0.0.1:\([0-9]*\).*/\1/p' "$log" | head -1)
}
start_peer() {
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    taskset -c "$server_cpu" "$peer" "$PORT" "$dir/server.pem" 2>"$dir/peer.log" &
    PID=$!
    for _ in $(seq 100); do grep -q "listening on" "$dir/peer.log" 2>/dev/null && break; sleep 0.1; done
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; }

# Both servers up at once (only the one loaded uses its core); the cells interleave
# weft and tokio-rustls, ROUNDS times, so that a change in the machine's load hits both.
start_weft; wport=$PORT; wpid=$PID
start_peer; pport=$PORT; ppid=$PID
servers="weft peer"
if [ -n "${WEFT_B:-}" ]; then
    start_weft "$WEFT_B"; bport=$PORT; bpid=$PID
    servers="weft peer weft-b"
fi
# pick WHO: sets name, port and pid of that server.
pick() {
    case $1 in
    weft) name="weft (1 core)"; port=$wport; pid=$wpid ;;
    peer) name="tokio-rustls (1 thread)"; port=$pport; pid=$ppid ;;
    weft-b) name="weft-b (1 core)"; port=$bport; pid=$bpid ;;
    esac
}
tls=(--tls --insecure)
for round in $(seq "${ROUNDS:-3}"); do
    echo "round $round"
    for who in $servers; do
        pick $who
        efficiency "$name" "$pid" "full handshakes, $inflight in flight" \
            connect --target "127.0.0.1:$port" "${tls[@]}" --connections "$inflight"
    done
    for conns in 16 256; do
        for who in $servers; do
            pick $who
            efficiency "$name" "$pid" "64-byte ping-pong, $conns connections" \
                echo --target "127.0.0.1:$port" "${tls[@]}" --connections "$conns" --size 64
        done
    done
done
stop "$wpid"
stop "$ppid"
[ -z "${WEFT_B:-}" ] || stop "$bpid"

# Idle memory on fresh servers (a loaded server's allocator holds memory it would
# reuse for the idle connections).
start_weft; idle_memory "weft (1 core)" "$PORT" "$PID"; stop "$PID"
start_peer; idle_memory "tokio-rustls (1 thread)" "$PORT" "$PID"; stop "$PID"
if [ -n "${WEFT_B:-}" ]; then
    start_weft "$WEFT_B"; idle_memory "weft-b (1 core)" "$PORT" "$PID"; stop "$PID"
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
