"""A tiny S3 endpoint that answers ListObjectsV2 with malformed listings moto cannot produce.

    python3 fake_s3_listing.py PORT_FILE

Listens on a free loopback port (written to PORT_FILE) and answers GET /BUCKET?list-type=2&prefix=P
with a page chosen by the first segment of P (the "case"); every other request gets 404.
Each request is also counted per case in /counts (JSON), so a test can tell a client that
loops for ever from one that stops. Signatures are not checked: this is a malformed-response
fixture, not an emulator.

Cases (prefix "CASE/"):
  ok        two pages (a token, then the last page): the well-formed control
  short     a key shorter than the prefix asked for
  outside   a key that does not start with the prefix
  nokey     a second <Contents> without <Key> (a client that reuses the last key counts it twice)
  nosize    a <Contents> without <Size>
  hugesize  Size 18446744073709551615
  negsize   Size -1
  fracsize  Size 1.5
  loop      IsTruncated=true with the same continuation token as the request, for ever
  repeat    page 2 (a new token) lists page 1's keys again
  badtrunc  IsTruncated=maybe
  dotdot    a key with a ".." segment
"""
import collections
import http.server
import json
import sys
import threading
import urllib.parse

counts = collections.Counter()
lock = threading.Lock()


def contents(key, size=10):
    k = "" if key is None else "<Key>%s</Key>" % key
    s = "" if size is None else "<Size>%s</Size>" % size
    return "<Contents>%s<LastModified>2026-01-01T00:00:00.000Z</LastModified>%s</Contents>" % (k, s)


def page(prefix, items, truncated=False, token=None):
    t = "<NextContinuationToken>%s</NextContinuationToken>" % token if token else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        "<Name>b</Name><Prefix>%s</Prefix><KeyCount>%d</KeyCount><MaxKeys>1000</MaxKeys>"
        "<IsTruncated>%s</IsTruncated>%s%s</ListBucketResult>"
        % (prefix, len(items), "true" if truncated is True else ("false" if truncated is False else truncated), t,
           "".join(items))
    )


def answer(case, prefix, token):
    p = prefix
    if case == "ok":
        if not token:
            return page(p, [contents(p + "a.txt"), contents(p + "b.txt")], True, "T1")
        return page(p, [contents(p + "c.txt")])
    if case == "short":
        return page(p, [contents("sh")])
    if case == "outside":
        return page(p, [contents(p + "a.txt"), contents("zzz/other.txt")])
    if case == "nokey":
        return page(p, [contents(p + "a.txt"), contents(None)])
    if case == "nosize":
        return page(p, [contents(p + "a.txt", None)])
    if case == "hugesize":
        return page(p, [contents(p + "a.txt", "18446744073709551615")])
    if case == "negsize":
        return page(p, [contents(p + "a.txt", "-1")])
    if case == "fracsize":
        return page(p, [contents(p + "a.txt", "1.5")])
    if case == "loop":
        return page(p, [contents(p + "a.txt")] if not token else [], True, token or "SAME")
    if case == "repeat":
        if not token:
            return page(p, [contents(p + "a.txt"), contents(p + "b.txt")], True, "T1")
        return page(p, [contents(p + "a.txt"), contents(p + "b.txt")])
    if case == "badtrunc":
        return page(p, [contents(p + "a.txt")], "maybe")
    if case == "dotdot":
        return page(p, [contents(p + "x/../../etc/passwd")])
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body, ctype="application/xml"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/counts":
            with lock:
                return self.reply(200, json.dumps(counts), "application/json")
        q = urllib.parse.parse_qs(url.query)
        prefix = q.get("prefix", [""])[0]
        case = prefix.split("/", 1)[0]
        body = answer(case, prefix, q.get("continuation-token", [None])[0]) if "list-type" in q else None
        with lock:
            counts[case] += 1
        if body is None:
            return self.reply(404, "<Error><Code>NoSuchKey</Code><Message>not here</Message></Error>")
        self.reply(200, body)

    do_HEAD = do_GET


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
