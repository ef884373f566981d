#!/usr/bin/env bash
# TLS figures for weft's ssl: echo against the tokio-rustls peer, one server core each:
#   1. full TLS 1.3 handshakes (ECDSA P-256) per second of *server* CPU, driven by
#      `openssl s_time -new` (every connection a full handshake);
#   2. server memory per idle TLS connection, with N connections held open by Python.
# Usage: benches/peers/tls_compare.sh [SECONDS] [IDLE_CONNECTIONS]
# Needs: a release weft (cargo build --release), openssl, python3; the peer is built
# here from benches/peers/tokio_rustls_echo if missing. Kept apart from compare.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
idle=${2:-5000}
weft=target/release/weft
peer=benches/peers/tokio_rustls_echo/target/release/tokio-rustls-echo
[ -x "$weft" ] || { echo "build weft first: cargo build --release" >&2; exit 1; }
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

measure() { # name port pid
    local name=$1 port=$2 pid=$3 t0 t1 out n
    t0=$(cpu_ticks "$pid")
    out=$(openssl s_time -connect "127.0.0.1:$port" -new -time "$secs" -CAfile "$dir/cert.pem" 2>&1 || true)
    t1=$(cpu_ticks "$pid")
    n=$(echo "$out" | awk '/connections in/ {print $1; exit}')
    local hz; hz=$(getconf CLK_TCK)
    python3 - "$name" "$n" "$t0" "$t1" "$hz" "$secs" <<'PY'
import sys
name, n, t0, t1, hz, secs = sys.argv[1], int(sys.argv[2] or 0), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
cpu = (t1 - t0) / hz
print(f"{name}: {n} full handshakes in {secs:.0f} s wall, {cpu:.2f} s server CPU -> "
      f"{n / secs:.0f}/s wall, {n / cpu if cpu else float('nan'):.0f} per server-CPU-second")
PY
    local before after
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
print(f"{name}: {n} idle TLS connections: RSS {before} -> {after} KiB, "
      f"{(after - before) * 1024 / n:.0f} bytes per connection")
PY
}

"$weft" serve echo --cores 1 "ssl:0:interface=127.0.0.1:privateKey=$dir/server.pem:maxHandshakes=100000" 2>"$dir/weft.log" &
wpid=$!
for _ in $(seq 100); do grep -q "listening on" "$dir/weft.log" 2>/dev/null && break; sleep 0.1; done
wport=$(sed -n 's/.*listening on tcp:127.0.0.1:\([0-9]*\).*/\1/p' "$dir/weft.log" | head -1)
measure "weft (1 core)" "$wport" "$wpid"
kill -TERM "$wpid"; wait "$wpid" 2>/dev/null || true

pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$peer" "$pport" "$dir/server.pem" 2>"$dir/peer.log" &
ppid=$!
for _ in $(seq 100); do grep -q "listening on" "$dir/peer.log" 2>/dev/null && break; sleep 0.1; done
measure "tokio-rustls (1 thread)" "$pport" "$ppid"
