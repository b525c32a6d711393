"""A reverse proxy that lets through only requests correctly signed with SigV4.

    python3 sigv4_check_proxy.py UPSTREAM_URL SECRET_ACCESS_KEY COUNT_FILE

Prints its port on the first line of stdout. Each request's signature is recomputed with
botocore (the AWS SDK for Python) from the request exactly as received (raw path and query,
the headers listed in SignedHeaders, the body) and the given secret; a mismatch is answered
403 InvalidSignatureException, as AWS does, and is not forwarded. COUNT_FILE receives one
line per request: "ok" or "bad". Used to prove that the Lambda invoker signs as AWS expects
when the server behind it (lambdamr serve) does not check signatures itself.
"""
import http.client
import http.server
import json
import sys
import threading
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

upstream = urllib.parse.urlsplit(sys.argv[1])
secret = sys.argv[2]
count_file = sys.argv[3]
lock = threading.Lock()


def between(text, start, end):
    return text.partition(start)[2].partition(end)[0]


def signature_ok(method, raw_path, headers, body):
    auth = headers.get("Authorization", "")
    scope = between(auth, "Credential=", ",").split("/")
    if len(scope) != 5:
        return False
    signed = between(auth, "SignedHeaders=", ",").split(";")
    given = between(auth, "Signature=", ",")
    hs = {k: v for k, v in headers.items() if k.lower() in signed}
    req = AWSRequest(method=method, url=raw_path, data=body, headers=hs)
    req.context["timestamp"] = headers.get("X-Amz-Date", "")
    signer = SigV4Auth(Credentials(scope[0], secret), scope[3], scope[2])
    canonical = signer.canonical_request(req)
    want = signer.signature(signer.string_to_sign(req, canonical), req)
    return want == given


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items()}
        ok = signature_ok(self.command, self.path, headers, body)
        with lock, open(count_file, "a") as f:
            f.write("ok\n" if ok else "bad\n")
        if not ok:
            out = json.dumps({"message": "The request signature we calculated does not match the signature you "
                              "provided."}).encode()
            self.send_response(403)
            self.send_header("x-amzn-ErrorType", "InvalidSignatureException")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
        fwd = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=fwd)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST
    do_PUT = do_POST
    do_DELETE = do_POST


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
