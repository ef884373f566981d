#!/usr/bin/env python3
"""Half-open TLS handshakes against `weft serve echo` on an ssl: endpoint.

N connections each send a real TLS 1.3 ClientHello (made by Python's ssl module)
and then nothing: the server computes its key share, answers with its whole flight
and waits for a Finished that never comes. The script reports

  * the server's memory per half-open handshake (RSS before and after, /proc),
  * that a real client is still served while they wait (one TLS echo, timed),
  * when each of the N is closed by the server, measured from when it was opened
    (all must be closed, none before the handshake timeout and none long after).

Usage: benches/tls_half_open.py [N] [HANDSHAKE_TIMEOUT_SECONDS]
Needs a release weft (cargo build --release) and openssl (for the certificate).
Exits non-zero if a check fails.
"""

import os
import resource
import select
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEFT = os.path.join(ROOT, "target", "release", "weft")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def client_hello(ctx):
    """A fresh ClientHello (its own key share), as bytes on the wire."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = tempfile.mkdtemp()
    pem, cert = os.path.join(tmp, "server.pem"), os.path.join(tmp, "cert.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:FALSE", "-keyout", pem, "-out", cert],
        check=True, stderr=subprocess.DEVNULL)
    with open(pem, "ab") as out, open(cert, "rb") as c:
        out.write(c.read())
    log = open(os.path.join(tmp, "weft.log"), "w+")
    # The cap on handshakes in progress is set above N, so that the good client is
    # let in: with the default cap (10 000 per shard) the cap, not the timeout, is
    # what turns a larger flood away.
    server = subprocess.Popen(
        [WEFT, "serve", "echo", "--cores", "1",
         f"ssl:0:interface=127.0.0.1:privateKey={pem}:handshakeTimeout={timeout:g}"
         f":maxHandshakes={n + 100}"],
        stderr=log)
    port = None
    for _ in range(100):
        log.seek(0)
        text = log.read()
        if "listening on tcp:127.0.0.1:" in text:
            port = int(text.split("listening on tcp:127.0.0.1:")[1].split()[0].strip(",)"))
            break
        time.sleep(0.1)
    if port is None:
        sys.exit("weft did not start")
    load = open("/proc/loadavg").read().split()[:3]
    print(f"load average: {' '.join(load)}")
    ctx = ssl.create_default_context(cafile=cert)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    before = rss_kib(server.pid)

    socks, opened = [], []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(client_hello(ctx))
        socks.append(s)
        opened.append(time.monotonic())
    # Let the server answer every ClientHello (each answer is one flight).
    deadline = time.monotonic() + 5
    answered = 0
    for s in socks:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if s.recv(1, socket.MSG_PEEK):
                answered += 1
        except OSError:
            pass
    during = rss_kib(server.pid)
    per = (during - before) * 1024 / n
    print(f"{n} half-open handshakes ({answered} answered by the server): "
          f"RSS {before} -> {during} KiB, {per:.0f} bytes each")

    t0 = time.monotonic()
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    good = ctx.wrap_socket(raw, server_hostname="localhost")
    good.sendall(b"served meanwhile")
    reply = good.recv(100)
    served_ms = (time.monotonic() - t0) * 1000
    print(f"a good client meanwhile: handshake and echo in {served_ms:.1f} ms ({reply!r})")

    closed = {}
    for s in socks:
        s.setblocking(False)
    fds = {s.fileno(): i for i, s in enumerate(socks)}
    poller = select.epoll()
    for fd in fds:
        poller.register(fd, select.EPOLLIN | select.EPOLLRDHUP)
    limit = time.monotonic() + timeout + 30
    while len(closed) < n and time.monotonic() < limit:
        for fd, _ in poller.poll(1.0):
            i = fds[fd]
            try:
                while True:
                    data = socks[i].recv(65536)
                    if not data:
                        break
            except BlockingIOError:
                continue
            except OSError:
                pass
            closed[i] = time.monotonic()
            poller.unregister(fd)
    after = rss_kib(server.pid)
    lives = sorted(closed[i] - opened[i] for i in closed)
    ok = True
    if len(closed) != n:
        print(f"FAIL: only {len(closed)} of {n} were closed by the server")
        ok = False
    if lives:
        print(f"closed after {lives[0]:.2f} s (first) to {lives[-1]:.2f} s (last) from their "
              f"open, median {lives[len(lives) // 2]:.2f} s; handshakeTimeout={timeout:g} s")
        if lives[0] < timeout - 0.5:
            print("FAIL: one was closed before its timeout")
            ok = False
    print(f"RSS after they were all closed: {after} KiB")
    if reply != b"served meanwhile":
        ok = False
    good.close()
    server.terminate()
    server.wait()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
