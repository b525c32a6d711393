"""moto_server with one fix: signatures are checked against the request URI as sent.

moto (5.x, server mode) rebuilds the URL it verifies a SigV4 signature against from
werkzeug's request.url, which decodes and re-quotes the query string: "prefix=a%2F" becomes
"prefix=a/". A correctly signed request whose query holds a reserved character (any S3
ListObjectsV2 with a prefix such as "input/") then fails with SignatureDoesNotMatch, for the
aws CLI as much as for lambdamr (moto issue #5948). This wrapper hands moto's signature check
the raw request URI (werkzeug's RAW_URI) instead. A second fix of the same kind: for a
request without a body (Lambda's GetFunction, ListEventSourceMappings ...), moto's Lambda
responses hand the check a dict of request fields as the "data" it hashes, so every signed GET
failed; the check gets the empty payload that was signed. A third, for Kinesis resharding
(SplitShard, MergeShards, UpdateShardCount): moto 5 routes a put to the first shard whose hash
range holds the key, closed parents included, so after a reshard every record still went to
the closed parent, and a split moved the parent's records into its children. Kinesis routes
new records to the open child the key's hash maps to (EndingHashKey inclusive), and records
put before the reshard stay in the parent. Here puts go to open shards only and the parents
keep their records. Everything else, including the check itself, is moto's own. Usage: python3 moto_server.py -H 127.0.0.1 -p PORT
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


from moto.kinesis import models as _kinesis_models
from moto.kinesis.exceptions import InvalidArgumentError as _KinesisInvalidArgument

_orig_get_shard_for_key = _kinesis_models.Stream.get_shard_for_key
_orig_split_shard = _kinesis_models.Stream.split_shard
_orig_merge_shards = _kinesis_models.Stream.merge_shards


def _get_shard_for_key(self, partition_key, explicit_hash_key):
    _orig_get_shard_for_key(self, partition_key, explicit_hash_key)  # moto's argument checks
    if explicit_hash_key:
        key = int(explicit_hash_key)
    else:
        key = int(_kinesis_models.md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
    for shard in self.shards.values():
        if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
            return shard
    raise _KinesisInvalidArgument("no open shard holds hash key %d" % key)


def _keep_parent_records(orig):
    def reshard(self, *args, **kwargs):
        before = set(self.shards)
        kept = {sid: s.records for sid, s in self.shards.items()}
        orig(self, *args, **kwargs)
        for sid, shard in self.shards.items():
            if sid in before:
                shard.records = kept[sid]
            else:
                shard.records = type(shard.records)()  # a new shard starts empty
    return reshard


_kinesis_models.Stream.get_shard_for_key = _get_shard_for_key
_kinesis_models.Stream.split_shard = _keep_parent_records(_orig_split_shard)
_kinesis_models.Stream.merge_shards = _keep_parent_records(_orig_merge_shards)
_responses.BaseResponse.setup_class = _setup_class
ActionAuthenticatorMixin._authenticate_and_authorize_action = _authorize

if __name__ == "__main__":
    main(sys.argv[1:])
