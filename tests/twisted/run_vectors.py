#!/usr/bin/env python3
"""Runs Twisted's own receivers over weft's committed input vectors.

For every vector in a ``tests/vectors/*.vec`` file and every chunking it names, this
feeds the input to the matching ``twisted.protocols.basic`` receiver over a
``StringTransport`` and records the events (lines, raw data, length-exceeded with its
argument, lose_connection). ``tests/twisted_differential.rs`` runs weft's receivers the
same way and must produce the same text.

    python3 tests/twisted/run_vectors.py tests/vectors/line.vec          # to stdout
    python3 tests/twisted/run_vectors.py --write tests/vectors/*.vec      # expected/

The vector format and the scripted handlers are described in tests/vectors/README.md;
the Rust side implements the same ones.
"""

import os
import sys

from twisted.internet.testing import StringTransport
from twisted.protocols import basic


def unescape(text):
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            n = text[i + 1]
            if n == "x":
                out.append(int(text[i + 2 : i + 4], 16))
                i += 4
                continue
            out += {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\", "s": b" "}[n]
            i += 2
        else:
            out += c.encode("latin-1")
            i += 1
    return bytes(out)


def fnv64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def escape(data):
    if len(data) > 64:
        return "#%d:%016x" % (len(data), fnv64(data))
    out = []
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif 0x21 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


def parse(path):
    vectors = []
    cur = None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            key, _, rest = line.partition(" ")
            if key == "vector":
                cur = {"name": rest, "input": b"", "chunks": ["whole"], "max": None,
                       "delimiter": None, "exceeded": "close"}
            elif key == "receiver":
                cur["receiver"] = rest
            elif key == "max":
                cur["max"] = int(rest)
            elif key == "delimiter":
                cur["delimiter"] = unescape(rest)
            elif key == "exceeded":
                cur["exceeded"] = rest
            elif key == "chunks":
                cur["chunks"] = rest.split()
            elif key == "input":
                cur["input"] += unescape(rest)
            elif key == "repeat":
                count, _, text = rest.partition(" ")
                cur["input"] += unescape(text) * int(count)
            elif key == "end":
                vectors.append(cur)
                cur = None
            else:
                raise ValueError("%s: unknown key %r" % (path, key))
    return vectors


def chunkings(spec, data):
    """Yields (label, list of chunks) for a vector's chunk spec."""
    for item in spec:
        if item == "whole":
            yield "whole", [data]
        elif item == "splits":
            for i in range(len(data) + 1):
                yield "split@%d" % i, [data[:i], data[i:]]
        else:
            n = int(item)
            yield "by%d" % n, [data[i : i + n] for i in range(0, len(data), n)] or [b""]


class RecordingTransport(StringTransport):
    def __init__(self, events):
        StringTransport.__init__(self)
        self.events = events

    def loseConnection(self):
        if not self.disconnecting:
            self.events.append("lose")
        StringTransport.loseConnection(self)

    def stopProducing(self):
        # A TCP transport closes when its producer is stopped.
        self.loseConnection()


def make_protocol(vec, events):
    kind = vec["receiver"]
    keep = vec["exceeded"] == "keep"

    if kind == "line":

        class P(basic.LineReceiver):
            remaining = 0

            def lineReceived(self, line):
                events.append("line " + escape(line))
                if line.startswith(b"raw "):
                    self.remaining = int(line[4:])
                    self.setRawMode()
                elif line == b"pause":
                    self.pauseProducing()
                elif line == b"quit":
                    self.transport.loseConnection()
                elif line == b"stop":
                    self.stopProducing()
                elif line == b"clear":
                    events.append("cleared " + escape(self.clearLineBuffer()))

            def rawDataReceived(self, data):
                events.append("raw " + escape(data))
                take = min(self.remaining, len(data))
                self.remaining -= take
                if self.remaining == 0:
                    self.setLineMode(data[take:])

            def lineLengthExceeded(self, line):
                events.append("exceeded " + escape(line))
                if not keep:
                    return basic.LineReceiver.lineLengthExceeded(self, line)

    elif kind == "line_only":

        class P(basic.LineOnlyReceiver):
            def lineReceived(self, line):
                events.append("line " + escape(line))
                if line == b"quit":
                    self.transport.loseConnection()

            def lineLengthExceeded(self, line):
                events.append("exceeded " + escape(line))
                return basic.LineOnlyReceiver.lineLengthExceeded(self, line)

    elif kind == "netstring":

        class P(basic.NetstringReceiver):
            def stringReceived(self, string):
                events.append("string " + escape(string))
                if string == b"quit":
                    self.transport.loseConnection()

    elif kind in ("int8", "int16", "int32"):
        base = {"int8": basic.Int8StringReceiver, "int16": basic.Int16StringReceiver,
                "int32": basic.Int32StringReceiver}[kind]

        class P(base):
            def stringReceived(self, string):
                events.append("string " + escape(string))
                if string == b"pause":
                    self.pauseProducing()
                elif string == b"quit":
                    self.transport.loseConnection()

            def lengthLimitExceeded(self, length):
                events.append("limit %d" % length)
                return base.lengthLimitExceeded(self, length)

    else:
        raise ValueError("unknown receiver %r" % kind)

    p = P()
    if vec["max"] is not None:
        p.MAX_LENGTH = vec["max"]
    if vec["delimiter"] is not None:
        p.delimiter = vec["delimiter"]
    return p


def run(vec, chunks):
    events = []
    transport = RecordingTransport(events)
    p = make_protocol(vec, events)
    p.makeConnection(transport)
    for chunk in chunks:
        # The engine stops reading at loseConnection, as Twisted's TCP transport does.
        if transport.disconnecting:
            break
        p.dataReceived(chunk)
        while getattr(p, "paused", False) and not transport.disconnecting:
            events.append("resume")
            p.resumeProducing()
    return events


def render(path):
    out = []
    for vec in parse(path):
        out.append("vector " + vec["name"])
        groups = []  # [(events, [labels])], in order of first appearance
        for label, chunks in chunkings(vec["chunks"], vec["input"]):
            events = run(vec, chunks)
            for g in groups:
                if g[0] == events:
                    g[1].append(label)
                    break
            else:
                groups.append((events, [label]))
        for events, labels in groups:
            out.append("chunkings " + " ".join(labels))
            out.extend(events)
    return "\n".join(out) + "\n"


def main(argv):
    write = "--write" in argv
    paths = [a for a in argv if a != "--write"]
    for path in paths:
        text = render(path)
        if write:
            stem = os.path.splitext(os.path.basename(path))[0]
            target = os.path.join(os.path.dirname(path), "expected", stem + ".out")
            with open(target, "w", encoding="utf-8") as f:
                f.write(text)
            print("wrote", target)
        else:
            sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
