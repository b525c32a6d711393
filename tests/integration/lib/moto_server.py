"""moto_server with one fix: signatures are checked against the request URI as sent.

moto (5.x, server mode) rebuilds the URL it verifies a SigV4 signature against from
werkzeug's request.url, which decodes and re-quotes the query string: "prefix=a%2F" becomes
"prefix=a/". A correctly signed request whose query holds a reserved character (any S3
ListObjectsV2 with a prefix such as "input/") then fails with SignatureDoesNotMatch, for the
aws CLI as much as for lambdamr (moto issue #5948). This wrapper hands moto's signature check
the raw request URI (werkzeug's RAW_URI) instead. A second fix of the same kind: for a
request without a body (Lambda's GetFunction, ListEventSourceMappings ...), moto's Lambda
responses hand the check a dict of request fields as the "data" it hashes, so every signed GET
failed; the check gets the empty payload that was signed. Everything else, including the check
itself, is moto's own. Usage: python3 moto_server.py -H 127.0.0.1 -p PORT
"""
import sys

from moto.core import responses as _responses
from moto.core.authorization import ActionAuthenticatorMixin
from moto.server import main

_orig_setup_class = _responses.BaseResponse.setup_class
_orig_authorize = ActionAuthenticatorMixin._authenticate_and_authorize_action


def _setup_class(self, request, full_url, headers, *args, **kwargs):
    _orig_setup_class(self, request, full_url, headers, *args, **kwargs)
    environ = getattr(request, "environ", None)
    self._lmr_raw_uri = environ.get("RAW_URI") if isinstance(environ, dict) else None


def _authorize(self, iam_request_cls, resource="*"):
    raw = getattr(self, "_lmr_raw_uri", None)
    if not raw:
        return _orig_authorize(self, iam_request_cls, resource)
    saved = self.uri, self.data
    self.uri = raw
    if not int(self.headers.get("Content-Length") or 0) and not isinstance(self.data, (str, bytes)):
        self.data = {}  # the signed payload of a request without a body is empty (see the docstring)
    try:
        return _orig_authorize(self, iam_request_cls, resource)
    finally:
        self.uri, self.data = saved


_responses.BaseResponse.setup_class = _setup_class
ActionAuthenticatorMixin._authenticate_and_authorize_action = _authorize

if __name__ == "__main__":
    main(sys.argv[1:])
