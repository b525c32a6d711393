#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for S3 (moto or any endpoint), for tests.

    s3_fault_proxy.py --upstream http://127.0.0.1:PORT [--port 0] [--port-file F]
                      [--seed N] [--slowdown P] [--internal-error P] [--reset P]
                      [--reset-after P] [--truncate P] [--counts-file F] [--log]
                      [--request-log F] [--only REGEX]
                      [--shape] [--latency-ms MIN[:MAX]] [--bandwidth-mbs MIN[:MAX]]
                      [--get-rate N] [--put-rate N] [--burst-s S]

Clients point AWS_ENDPOINT_URL at the proxy. Every request is forwarded byte for byte (request
line, headers in their order and spelling, Host as the client sent it, body), so SigV4
signatures made for the proxy's address verify upstream. On a seeded share of requests it
answers instead, or breaks the exchange:

  --slowdown P        503 SlowDown (S3's throttling answer), not forwarded
  --internal-error P  500 InternalError, not forwarded
  --reset P           the connection is reset (TCP RST) before the request is forwarded
  --reset-after P     forwarded (upstream applies it), then reset before the response: a lost answer
  --truncate P        forwarded, the response head and part of its body relayed, then reset

P is a probability in [0, 1]; the shares are exclusive (their sum must be <= 1). --seed makes
the sequence of decisions reproducible (decision i is the i-th request the proxy reads; with
concurrent clients which request is i-th can vary). The proxy counts what it did: GET
/__fault_proxy/counts answers the counts as JSON (never forwarded), and --counts-file gets
them at exit (SIGTERM/SIGINT); --port-file receives the port once listening. --log writes one
line per request to stderr (its number, the fault or "-", method and target), to see which
request got which fault (and its If-Match / If-None-Match, if any). --only REGEX limits the
faults to requests whose "METHOD target" matches (the others are forwarded untouched and take
no decision from the seeded sequence). --request-log F writes one line per finished exchange
to F: "CONN START_MS END_MS STATUS METHOD TARGET RANGE" (CONN numbers client connections,
times are milliseconds since the proxy started, from the request's arrival to the answer's
last byte, STATUS is the answer's or "reset", RANGE the Range header or "-"), so a test can see
which requests were in flight at the same time.

Shaping (issue 16: an S3 that behaves like S3; off unless asked for). --shape turns on all
three with AWS's published figures as defaults; each option alone turns on just that one, and
0 turns one off:

  --latency-ms MIN[:MAX]     first-byte latency per request, drawn uniformly (seeded) from
                             [MIN, MAX] ms: the answer's first byte leaves the proxy no earlier
                             than that long after the request was read (upstream's own time
                             counts toward it). Default with --shape 20:50.
  --bandwidth-mbs MIN[:MAX]  per-connection bandwidth in MB/s (10^6 bytes), drawn per client
                             connection (seeded); response bodies are paced to it as they are
                             relayed and request bodies delay the forwarding by their size over
                             it. Default with --shape 70:90.
  --get-rate N, --put-rate N requests per second per prefix (GET/HEAD, and PUT/POST/DELETE/COPY);
                             past it the proxy answers 503 SlowDown without forwarding. Default
                             with --shape 5500 and 3500 (S3's per partitioned prefix figures).
  --burst-s S                the rate limits' token buckets hold S seconds of the rate
                             (default 1); a bucket starts full.

A prefix is the bucket and the key up to its last '/' (path-style requests, as lambdamr and
moto use; a virtual-host bucket is taken from Host), so s3://b/in/part-1 and s3://b/in/part-2
share one budget. The rate limit is a decision like the faults: it is consulted for requests
the fault policy let through, and a throttled request counts as "throttled".

Structure: FaultPolicy (seeded faults) and RateLimit (token buckets) decide per request and know
nothing of sockets; Shaper holds the seeded latency and bandwidth draws and does the waiting;
Connection parses and forwards HTTP/1.1 and applies what was decided.
"""
import argparse
import asyncio
import json
import random
import re
import signal
import socket
import struct
import sys
import time
import urllib.parse

MAX_HEAD_BYTES = 64 * 1024

# ---- decisions --------------------------------------------------------------------------------

FAULTS = ("slowdown", "internal_error", "reset", "reset_after", "truncate")


class FaultPolicy:
    """Seeded per-request decisions: None (forward untouched) or one of FAULTS."""

    def __init__(self, seed, shares):
        self.rng = random.Random(seed)
        self.shares = [(name, float(shares.get(name, 0.0))) for name in FAULTS]
        total = sum(p for _, p in self.shares)
        if any(p < 0 or p > 1 for _, p in self.shares) or total > 1:
            raise ValueError("fault shares must be in [0, 1] and sum to at most 1")
        self.counts = {"requests": 0, "forwarded": 0, "faulted": 0}
        self.counts.update({name: 0 for name in FAULTS})

    def decide(self, method, target):
        self.counts["requests"] += 1
        x = self.rng.random()
        for name, p in self.shares:
            if x < p:
                self.counts[name] += 1
                self.counts["faulted"] += 1
                return name
            x -= p
        return None

    def forwarded(self):
        self.counts["forwarded"] += 1


READ_METHODS = ("GET", "HEAD")


def request_prefix(target, host):
    """The rate limit's unit for a request: 'bucket/key-up-to-its-last-slash' (or 'bucket')."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(target).path)
    parts = path.lstrip("/").split("/", 1)
    bucket, key = parts[0], parts[1] if len(parts) > 1 else ""
    hostname = (host or "").split(":")[0]
    if hostname.count(".") >= 2 and not hostname.replace(".", "").isdigit():
        bucket, key = hostname.split(".", 1)[0], path.lstrip("/")  # virtual-host style
    return bucket + "/" + key.rpartition("/")[0] if "/" in key else bucket


class RateLimit:
    """Token buckets per (prefix, GET or PUT class): a request past the rate is to be throttled.

    Deterministic given the arrival times (no randomness of its own)."""

    MAX_PREFIXES = 100000  # a cap on the buckets kept; the oldest are forgotten past it

    def __init__(self, get_rate, put_rate, burst_s=1.0, clock=time.monotonic):
        if get_rate < 0 or put_rate < 0 or burst_s <= 0:
            raise ValueError("--get-rate and --put-rate must be >= 0 and --burst-s > 0")
        self.rates = {"get": float(get_rate), "put": float(put_rate)}
        self.burst_s, self.clock = float(burst_s), clock
        self.buckets = {}  # (prefix, class) -> [tokens, last time]
        self.counts = {"throttled": 0, "throttled_get": 0, "throttled_put": 0}

    def enabled(self):
        return any(r > 0 for r in self.rates.values())

    def over(self, method, target, host):
        """True when this request is past its prefix's rate (and so gets 503 SlowDown)."""
        cls = "get" if method in READ_METHODS else "put"
        rate = self.rates[cls]
        if rate <= 0:
            return False
        now = self.clock()
        key = (request_prefix(target, host), cls)
        cap = max(1.0, rate * self.burst_s)
        b = self.buckets.get(key)
        if b is None:
            if len(self.buckets) >= self.MAX_PREFIXES:
                self.buckets.pop(next(iter(self.buckets)))
            b = self.buckets[key] = [cap, now]
        b[0] = min(cap, b[0] + (now - b[1]) * rate)
        b[1] = now
        if b[0] >= 1.0:
            b[0] -= 1.0
            return False
        self.counts["throttled"] += 1
        self.counts["throttled_" + cls] += 1
        return True


def parse_range(text, what):
    """'A' or 'A:B' -> (A, B) with 0 <= A <= B."""
    lo, _, hi = str(text).partition(":")
    lo, hi = float(lo), float(hi or lo)
    if lo < 0 or hi < lo:
        raise ValueError("%s %s: expected MIN[:MAX] with 0 <= MIN <= MAX" % (what, text))
    return lo, hi


class Shaper:
    """First-byte latency per request and bandwidth per connection, both drawn from a seeded
    generator (draw i is the i-th request or connection the proxy sees)."""

    CHUNK_BYTES = 64 * 1024

    def __init__(self, seed=1, latency_ms=(0.0, 0.0), bandwidth_mbs=(0.0, 0.0)):
        self.rng = random.Random((seed << 8) ^ 0x5A)  # independent of the fault decisions' sequence
        self.latency_ms, self.bandwidth_mbs = latency_ms, bandwidth_mbs
        self.counts = {"shaped_wait_ms": 0, "bytes_paced": 0}

    def connection_bandwidth(self):
        """Bytes per second for a new client connection (0: unlimited)."""
        lo, hi = self.bandwidth_mbs
        return self.rng.uniform(lo, hi) * 1e6 if hi > 0 else 0.0

    def request_latency(self):
        lo, hi = self.latency_ms
        return self.rng.uniform(lo, hi) / 1000.0 if hi > 0 else 0.0

    async def wait_until(self, deadline):
        dt = deadline - time.monotonic()
        if dt > 0:
            self.counts["shaped_wait_ms"] += int(dt * 1000)
            await asyncio.sleep(dt)

    async def upload(self, nbytes, started, bandwidth):
        """A request body of nbytes read since `started` is held until the bandwidth allows it."""
        if bandwidth > 0 and nbytes:
            await self.wait_until(started + nbytes / bandwidth)

    async def write(self, writer, data, first_byte_at=0.0, bandwidth=0.0):
        """Relay data no earlier than first_byte_at, paced to bandwidth bytes/s."""
        await self.wait_until(first_byte_at)
        if bandwidth <= 0:
            writer.write(data)
            await writer.drain()
            return
        start = time.monotonic()
        sent = 0
        view = memoryview(data)
        while sent < len(data):
            n = min(self.CHUNK_BYTES, len(data) - sent)
            writer.write(view[sent : sent + n])
            await writer.drain()
            sent += n
            self.counts["bytes_paced"] += n
            await self.wait_until(start + sent / bandwidth)


# ---- HTTP/1.1 framing -------------------------------------------------------------------------


class Head:
    """A request or response head: the raw bytes (forwarded unchanged) and parsed fields."""

    def __init__(self, raw):
        self.raw = raw
        lines = raw.decode("latin-1").split("\r\n")
        self.start = lines[0]
        self.headers = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                self.headers.append((name.strip().lower(), value.strip()))

    def get(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None


async def read_head(reader):
    """The bytes up to and including the blank line; None at a clean end of the stream."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise
    except asyncio.LimitOverrunError:
        raise ValueError("an HTTP head over %d bytes" % MAX_HEAD_BYTES)
    return Head(raw)


async def read_chunked(reader):
    """A chunked body, raw (chunk lines, data and trailers), as one bytes object."""
    parts = []
    while True:
        line = await reader.readuntil(b"\r\n")
        parts.append(line)
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:  # trailers, then the blank line
                t = await reader.readuntil(b"\r\n")
                parts.append(t)
                if t == b"\r\n":
                    return b"".join(parts)
        parts.append(await reader.readexactly(size + 2))


async def read_body(reader, head, is_response, request_method=None):
    """The message body as raw bytes, following RFC 9112 section 6.3."""
    if is_response:
        status = int(head.start.split()[1])
        if request_method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return b""
    te = (head.get("transfer-encoding") or "").lower()
    if "chunked" in te:
        return await read_chunked(reader)
    cl = head.get("content-length")
    if cl is not None:
        return await reader.readexactly(int(cl))
    if is_response:
        return await reader.read()  # delimited by the close
    return b""


def s3_error(status, reason, code, message):
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
        "<RequestId>FAULTPROXY</RequestId></Error>" % (code, message)
    ).encode()
    head = (
        "HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
        "x-amz-request-id: FAULTPROXY\r\n\r\n" % (status, reason, len(body))
    ).encode()
    return head + body


def reset(writer):
    """Close with a TCP RST (SO_LINGER 0), as a dropped connection looks to the client."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


# ---- forwarding -------------------------------------------------------------------------------


class Connection:
    """One client connection, with its own upstream connection, request after request."""

    def __init__(self, proxy, reader, writer):
        self.proxy, self.reader, self.writer = proxy, reader, writer
        self.up_reader = self.up_writer = None
        self.bandwidth = proxy.shaper.connection_bandwidth()
        self.first_byte_at = 0.0  # the current answer's earliest first byte (monotonic seconds)
        proxy.connections += 1
        self.number = proxy.connections

    async def answer(self, data):
        """Relay an answer (head and body) through the shaper."""
        await self.proxy.shaper.write(self.writer, data, self.first_byte_at, self.bandwidth)

    async def upstream(self):
        if self.up_writer is None or self.up_writer.is_closing():
            self.up_reader, self.up_writer = await asyncio.open_connection(
                self.proxy.upstream_host, self.proxy.upstream_port, limit=MAX_HEAD_BYTES
            )
        return self.up_reader, self.up_writer

    def close_upstream(self):
        if self.up_writer is not None:
            self.up_writer.close()
            self.up_writer = None

    async def serve(self):
        try:
            while await self.one_exchange():
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, OSError):
            pass
        finally:
            self.close_upstream()
            if not self.writer.is_closing():
                self.writer.close()

    async def one_exchange(self):
        """Read one request, apply the decision. @return False when the connection is done."""
        head = await read_head(self.reader)
        if head is None:
            return False
        if self.proxy.request_log is None:
            return await self.exchange(head)
        arrived, status = time.monotonic(), "reset"
        try:
            more = await self.exchange(head)
            status = self.status
            return more
        finally:
            method, target = head.start.split(" ", 2)[:2]
            if not target.startswith("/__fault_proxy/"):
                self.proxy.request_log.write("%d %.1f %.1f %s %s %s %s\n" % (
                    self.number, (arrived - self.proxy.started) * 1e3, (time.monotonic() - self.proxy.started) * 1e3,
                    status, method, target, (head.get("range") or "-").replace(" ", "")))
                self.proxy.request_log.flush()

    async def exchange(self, head):
        """One request whose head was read. Sets self.status to the answer's status ("reset" if none)."""
        self.status = "reset"
        shaper = self.proxy.shaper
        arrived = time.monotonic()
        method, target = head.start.split(" ", 2)[:2]
        if (head.get("expect") or "").lower() == "100-continue":
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await self.writer.drain()
        body = await read_body(self.reader, head, False)
        if urllib.parse.urlsplit(target).path == "/__fault_proxy/counts":
            data = json.dumps(self.proxy.counts()).encode()
            self.writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(data) + data
            )
            await self.writer.drain()
            return True
        fault = None
        if self.proxy.only is None or self.proxy.only.search("%s %s" % (method, target)):
            fault = self.proxy.policy.decide(method, target)
        else:
            self.proxy.policy.counts["requests"] += 1
        if fault is None and self.proxy.ratelimit.over(method, target, head.get("host")):
            fault = "slowdown"  # past the prefix's request rate: S3's throttling answer
        if self.proxy.log:
            cond = " ".join(h for h in ("if-match", "if-none-match") if head.get(h) is not None)
            print("%d %s %s %s %s" % (self.proxy.policy.counts["requests"], fault or "-", method, target, cond),
                  file=sys.stderr, flush=True)
        self.first_byte_at = arrived + shaper.request_latency()
        await shaper.upload(len(body), arrived, self.bandwidth)
        if fault == "slowdown":
            await self.answer(s3_error(503, "Slow Down", "SlowDown", "Please reduce your request rate."))
            self.status = "503"
            return True
        if fault == "internal_error":
            await self.answer(
                s3_error(500, "Internal Server Error", "InternalError", "We encountered an internal error. Please try again.")
            )
            self.status = "500"
            return True
        if fault == "reset":
            reset(self.writer)
            return False
        # Forward the request exactly as read, and read the whole answer (skipping 1xx).
        self.proxy.policy.forwarded()
        up_r, up_w = await self.upstream()
        up_w.write(head.raw + body)
        await up_w.drain()
        while True:
            rhead = await read_head(up_r)
            if rhead is None:
                raise ConnectionError("upstream closed without an answer")
            rbody = await read_body(up_r, rhead, True, method)
            if not rhead.start.split()[1].startswith("1"):
                break
        if (rhead.get("connection") or "").lower() == "close" or (
            rhead.get("content-length") is None and "chunked" not in (rhead.get("transfer-encoding") or "").lower()
            and method != "HEAD"
        ):
            self.close_upstream()
        if fault == "reset_after":
            reset(self.writer)
            return False
        if fault == "truncate" and len(rbody) > 1:
            await self.answer(rhead.raw + rbody[: len(rbody) // 2])
            reset(self.writer)
            self.status = "truncated"
            return False
        if fault == "truncate":  # nothing to cut: lose the answer instead
            reset(self.writer)
            return False
        await self.answer(rhead.raw + rbody)
        self.status = rhead.start.split()[1]
        return (head.get("connection") or "").lower() != "close"


class Proxy:
    def __init__(self, upstream, policy, shaper, ratelimit):
        u = urllib.parse.urlsplit(upstream)
        if u.scheme != "http" or not u.hostname:
            raise ValueError("--upstream must be http://HOST:PORT")
        self.upstream_host, self.upstream_port = u.hostname, u.port or 80
        self.policy, self.shaper, self.ratelimit = policy, shaper, ratelimit
        self.log = False
        self.only = None  # a compiled regex: only requests whose "METHOD target" matches can be faulted
        self.request_log = None  # an open file: one line per finished exchange (--request-log)
        self.connections = 0
        self.started = time.monotonic()

    def counts(self):
        c = dict(self.policy.counts)
        c.update(self.ratelimit.counts)
        c.update(self.shaper.counts)
        return c

    async def handle(self, reader, writer):
        await Connection(self, reader, writer).serve()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--counts-file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", metavar="REGEX", help='fault only requests whose "METHOD target" matches')
    ap.add_argument("--log", action="store_true", help="one line per request on stderr: number, fault, method, target")
    ap.add_argument("--request-log", metavar="F", help="one line per finished exchange: conn, start/end ms, status, method, target, range")
    for name in FAULTS:
        ap.add_argument("--" + name.replace("_", "-"), type=float, default=0.0, metavar="P")
    ap.add_argument("--shape", action="store_true", help="latency, bandwidth and rate limits at AWS's figures")
    ap.add_argument("--latency-ms", metavar="MIN[:MAX]")
    ap.add_argument("--bandwidth-mbs", metavar="MIN[:MAX]")
    ap.add_argument("--get-rate", type=float, metavar="N")
    ap.add_argument("--put-rate", type=float, metavar="N")
    ap.add_argument("--burst-s", type=float, default=1.0, metavar="S")
    a = ap.parse_args()
    # AWS's published figures (--shape): 20-50 ms to first byte, 70-90 MB/s per connection,
    # 5,500 GET/HEAD and 3,500 PUT/COPY/POST/DELETE per second per partitioned prefix.
    aws = dict(latency_ms="20:50", bandwidth_mbs="70:90", get_rate=5500.0, put_rate=3500.0)
    pick = {k: getattr(a, k) if getattr(a, k) is not None else (v if a.shape else 0) for k, v in aws.items()}
    try:
        policy = FaultPolicy(a.seed, {name: getattr(a, name) for name in FAULTS})
        shaper = Shaper(a.seed, parse_range(pick["latency_ms"], "--latency-ms"),
                        parse_range(pick["bandwidth_mbs"], "--bandwidth-mbs"))
        ratelimit = RateLimit(pick["get_rate"], pick["put_rate"], a.burst_s)
        proxy = Proxy(a.upstream, policy, shaper, ratelimit)
        proxy.log = a.log
        proxy.request_log = open(a.request_log, "w") if a.request_log else None
        proxy.only = re.compile(a.only) if a.only else None
    except ValueError as e:
        print("s3_fault_proxy.py: %s" % e, file=sys.stderr)
        sys.exit(2)
    print("s3_fault_proxy.py: shaping latency %s ms, bandwidth %s MB/s per connection, %g GET/s and %g PUT/s per prefix"
          % (pick["latency_ms"], pick["bandwidth_mbs"], pick["get_rate"], pick["put_rate"]), file=sys.stderr)
    server = await asyncio.start_server(proxy.handle, a.host, a.port, limit=MAX_HEAD_BYTES)
    port = server.sockets[0].getsockname()[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os

        os.replace(a.port_file + ".tmp", a.port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    text = json.dumps(proxy.counts(), sort_keys=True)
    if a.counts_file:
        with open(a.counts_file, "w") as f:
            f.write(text + "\n")
    print(text, file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
