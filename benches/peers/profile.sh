#!/usr/bin/env bash
# Where an echo server's CPU goes, and its syscalls per round trip: the figures of
# docs/benchmarks.md, "The engine, this session".
#
# usage: benches/peers/profile.sh SERVER CONNECTIONS   (SERVER: weft, uring-c or tokio;
#        build them first, e.g. with benches/peers/compare.sh)
# The server runs on core 0, loadgen (64-byte ping-pong) on core 1 for 4 s; after 1 s,
# `perf stat` counts io_uring_enter and all syscalls for 2 s, then `perf record`
# samples the server for 2 s. Prints syscalls per round trip and the samples' shares:
# io_uring's kernel functions, syscall entry and fd lookup, epoll, user space, the
# scheduler, and the rest of the kernel (TCP/IP, loopback, softirq).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=${CARGO_TARGET_DIR:-$ROOT/target}/release
name=$1 conns=$2
OUT=$(mktemp -d /tmp/weft-profile.XXXXXX)
run() { # run PHASE: starts the server and loadgen, runs PHASE's perf on the server
    local port=$((20000 + RANDOM % 5000))
    case $name in
        weft) taskset -c 0 "$T/weft" serve echo "tcp:$port:interface=127.0.0.1" --cores 1 >"$OUT/srv.log" 2>&1 & ;;
        uring-c) taskset -c 0 "$T/uring_echo" "$port" >"$OUT/srv.log" 2>&1 & ;;
        tokio) taskset -c 0 "$T/examples/tokio_echo" "$port" 0 >"$OUT/srv.log" 2>&1 & ;;
        *) echo "unknown server $name" >&2; exit 2 ;;
    esac
    local pid=$!
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    taskset -c 1 "$T/loadgen" echo --target "127.0.0.1:$port" --size 64 --connections "$conns" \
        --duration 4s --warmup 0.5s --cpus 1 --quiet --json "$OUT/$1.json" >/dev/null 2>&1 &
    local lg=$!
    sleep 1
    case $1 in
        stat) perf stat -x, -o "$OUT/stat.txt" -e task-clock,syscalls:sys_enter_io_uring_enter,raw_syscalls:sys_enter -p "$pid" -- sleep 2 ;;
        record) perf record -F 9999 -g -p "$pid" -o "$OUT/perf.data" -- sleep 2 >/dev/null 2>&1 ;;
    esac
    wait "$lg"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}
run stat
run record
perf report -i "$OUT/perf.data" --no-children --sort dso,sym -g none 2>/dev/null | grep '%' >"$OUT/report.txt"
python3 - "$name" "$OUT" <<'PY'
import json, re, sys
name, out = sys.argv[1], sys.argv[2]
rps = json.load(open(f"{out}/stat.json"))["throughput_rps"]
per = {}
for line in open(f"{out}/stat.txt"):
    p = line.strip().split(",")
    if len(p) > 3 and p[0].replace(".", "").isdigit():
        per[p[2]] = float(p[0]) / (rps * 2)
print(f"{name}: {rps:.0f} round trips/s; per round trip: "
      f"{per.get('task-clock', 0) * 1000:.1f} µs of server CPU, "
      f"{per.get('syscalls:sys_enter_io_uring_enter', 0):.2f} io_uring_enter, "
      f"{per.get('raw_syscalls:sys_enter', 0):.2f} syscalls")
entry = {"do_syscall_64", "entry_SYSCALL_64", "entry_SYSCALL_64_after_hwframe", "syscall_exit_to_user_mode",
         "syscall_return_via_sysret", "x64_sys_call", "__x64_sys_sendto", "__x64_sys_recvfrom", "__sys_sendto",
         "__sys_recvfrom", "fdget", "fget", "fput", "__fget_light", "sock_recvmsg", "sock_sendmsg",
         "__do_sys_io_uring_enter", "__x64_sys_io_uring_enter"}
share = dict.fromkeys(["io_uring", "syscall entry", "epoll", "user", "scheduler", "rest of kernel"], 0.0)
for line in open(f"{out}/report.txt"):
    m = re.match(r"\s*([\d.]+)%\s+\S+\s+\[(.)\]\s+(\S+)", line)
    if not m:
        continue
    pct, where, sym = float(m.group(1)), m.group(2), m.group(3)
    if where == ".":
        share["user"] += pct
    elif sym.startswith(("io_", "__io_")) or "io_uring" in sym or "llist" in sym:
        share["io_uring"] += pct
    elif "ep_" in sym or "epoll" in sym:
        share["epoll"] += pct
    elif sym in entry:
        share["syscall entry"] += pct
    elif "schedule" in sym or "switch" in sym:
        share["scheduler"] += pct
    else:
        share["rest of kernel"] += pct
print("  samples: " + ", ".join(f"{k} {v:.1f} %" for k, v in share.items()))
PY
