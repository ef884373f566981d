#!/usr/bin/env python3
"""Peers that never read, against a running echo-like server on 127.0.0.1.

  slow_readers.py PORT PID [--writers 20] [--seconds 10] [--pingers 4] [--payload 65536]

PID is the server's process id (for its RSS). The script first measures the round
trips of PINGERS ping-pong clients (64 bytes, one in flight) for 2 s, then opens
WRITERS connections with a 4 KiB receive buffer that write PAYLOAD-byte chunks as
fast as the server takes them and never read, for SECONDS, while the pingers go on.
It prints one JSON object: the server's RSS before and at the end of the storm (and
its growth), the pingers' p50/p99/max before and during the storm, and how many
writer connections the server reset or closed (an abort shows up as a reset).
"""

import argparse
import json
import socket
import threading
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, int(round(p / 100.0 * (len(sorted_values) - 1))))
    return sorted_values[i]


def pinger(port, stop, samples):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"p" * 64
    while not stop.is_set():
        t0 = time.perf_counter()
        s.sendall(msg)
        got = 0
        while got < len(msg):
            chunk = s.recv(len(msg) - got)
            if not chunk:
                raise SystemExit("pinger: the server closed the connection")
            got += len(chunk)
        samples.append(time.perf_counter() - t0)
    s.close()


def writer(port, stop, payload, outcome):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.settimeout(0.2)
    chunk = b"w" * payload
    sent = 0
    result = "open"
    while not stop.is_set():
        try:
            sent += s.send(chunk)
        except socket.timeout:
            continue  # the server stopped reading us: that is the point
        except (ConnectionResetError, BrokenPipeError):
            result = "reset"
            break
    outcome.append((result, sent))
    s.close()


def run_pingers(port, seconds, n):
    stop = threading.Event()
    lists = [[] for _ in range(n)]
    threads = [threading.Thread(target=pinger, args=(port, stop, l)) for l in lists]
    for t in threads:
        t.start()
    return stop, threads, lists


def summary(lists):
    values = sorted(v for l in lists for v in l)
    ms = lambda v: None if v is None else round(v * 1000, 3)
    return {
        "round_trips": len(values),
        "p50_ms": ms(percentile(values, 50)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(values[-1] if values else None),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("pid", type=int)
    ap.add_argument("--writers", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--pingers", type=int, default=4)
    ap.add_argument("--payload", type=int, default=65536)
    a = ap.parse_args()

    stop, threads, lists = run_pingers(a.port, 2.0, a.pingers)
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join()
    before = summary(lists)

    rss0 = rss_kib(a.pid)
    stop, threads, lists = run_pingers(a.port, a.seconds, a.pingers)
    wstop = threading.Event()
    outcome = []
    writers = [
        threading.Thread(target=writer, args=(a.port, wstop, a.payload, outcome))
        for _ in range(a.writers)
    ]
    for t in writers:
        t.start()
    peak = rss0
    t_end = time.time() + a.seconds
    while time.time() < t_end:
        peak = max(peak, rss_kib(a.pid))
        time.sleep(0.1)
    rss1 = rss_kib(a.pid)
    stop.set()
    wstop.set()
    for t in threads + writers:
        t.join()
    during = summary(lists)
    print(json.dumps({
        "writers": a.writers,
        "seconds": a.seconds,
        "rss_before_kib": rss0,
        "rss_peak_kib": peak,
        "rss_end_kib": rss1,
        "rss_growth_mib": round((peak - rss0) / 1024, 1),
        "writers_reset": sum(1 for r, _ in outcome if r == "reset"),
        "writer_bytes_sent": sum(s for _, s in outcome),
        "pingers_before": before,
        "pingers_during": during,
    }))


if __name__ == "__main__":
    main()
