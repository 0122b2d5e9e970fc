"""The local AWS API emulator: moto's server app, with requests handled one at a time, two
checks AWS makes that moto does not, and the S3 Vectors query moto lacks.

moto applies a TransactWriteItems one operation after another and rolls back by restoring a copy
of the table, without a lock, so under moto_server's threads a concurrent reader can see half a
transaction and a rollback can undo another writer. DynamoDB transactions are atomic; handling one
request at a time makes the emulator honour that. Connections stay threaded (keep-alive works).

AWS refuses an S3 request whose `x-amz-expected-bucket-owner` is not the bucket's owner, and an
AssumeRole whose ExternalId is not the one the role's trust policy requires; moto accepts both.
Export delivery relies on these refusals, so the emulator makes them, in AWS's wire format.

moto keeps S3 Vectors buckets, indexes and vectors but does not answer QueryVectors, and lets
CreateIndex replace an index of the same name (AWS refuses with ConflictException). The emulator
answers QueryVectors by exact search over the index moto holds (its distance metric, topK,
returnDistance and returnMetadata; a metadata filter is refused rather than ignored) and refuses a
second CreateIndex, both in the service's wire format.

moto encrypts and decrypts under a disabled key, or one pending deletion; KMS refuses
(DisabledException, KMSInvalidStateException). A tenant's own key is its off-switch, so the
emulator refuses too.

Usage: python tools/aws_emulator.py --host 127.0.0.1 --port 4566
"""

import argparse
import gc
import io
import json
import math
import threading
import urllib.parse

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class OneAtATime:
    """WSGI middleware: one request inside the app at a time, its body produced under the lock.

    moto backs up every table a transaction touches with a deep copy, which is cyclic garbage
    once the transaction is done: collected right away, so that a table of many items does not
    grow the emulator by a copy per transaction."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        transaction = environ.get("HTTP_X_AMZ_TARGET", "").endswith(".TransactWriteItems")
        with self.lock:
            body = list(self.app(environ, start_response))
            if transaction:
                gc.collect()
            return body


S3_ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
)


def sts_access_denied(message):
    return (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
        f"<Code>AccessDenied</Code><Message>{message}</Message></Error>"
        "<RequestId>0c2a8e3e-emulator</RequestId></ErrorResponse>"
    ).encode()


def bucket_owner(bucket):
    from moto.s3.models import s3_backends

    found = s3_backends.bucket_accounts.get(bucket)
    return found[1] if found else None


def required_external_ids(role_arn):
    """The external ids the role's trust policy requires, or None when the role is unknown."""
    from moto.iam.models import iam_backends

    try:
        account = role_arn.split(":")[4]
        name = role_arn.split(":role/")[1].split("/")[-1]
        role = iam_backends[account]["aws"].get_role(name)
    except Exception:  # an ARN of no role moto holds: moto's own behaviour
        return None
    policy = role.assume_role_policy_document
    if isinstance(policy, str):
        policy = json.loads(urllib.parse.unquote(policy))
    ids = []
    for statement in policy.get("Statement", []):
        wanted = statement.get("Condition", {}).get("StringEquals", {}).get("sts:ExternalId")
        if statement.get("Effect") == "Allow" and wanted:
            ids.extend(wanted if isinstance(wanted, list) else [wanted])
    return ids


class AwsChecks:
    """WSGI middleware: the expected-bucket-owner and external-id refusals of AWS."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        auth = environ.get("HTTP_AUTHORIZATION", "")
        expected = environ.get("HTTP_X_AMZ_EXPECTED_BUCKET_OWNER")
        if expected and "/s3/aws4_request" in auth:
            bucket = environ.get("PATH_INFO", "/").lstrip("/").split("/")[0]
            owner = bucket_owner(bucket)
            if owner is not None and owner != expected:
                start_response("403 Forbidden", [("Content-Type", "application/xml")])
                return [S3_ACCESS_DENIED]
        if "/sts/aws4_request" in auth:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
            form = urllib.parse.parse_qs(body.decode())
            if form.get("Action") == ["AssumeRole"]:
                role = form.get("RoleArn", [""])[0]
                given = form.get("ExternalId", [None])[0]
                required = required_external_ids(role)
                if required and given not in required:
                    message = f"not authorized to perform sts:AssumeRole on {role}"
                    start_response("403 Forbidden", [("Content-Type", "text/xml")])
                    return [sts_access_denied(message)]
        return self.app(environ, start_response)


def cosine_distance(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return 1.0 - dot / norms if norms else 1.0


def euclidean_distance(a, b):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def serve_s3_vectors_queries():
    """Teaches moto's S3 Vectors service QueryVectors and CreateIndex's conflict."""
    from moto.core.exceptions import ServiceException
    from moto.core.responses import ActionResult
    from moto.s3vectors import urls
    from moto.s3vectors.exceptions import ValidationError
    from moto.s3vectors.models import S3VectorsBackend
    from moto.s3vectors.responses import S3VectorsResponse

    class Conflict(ServiceException):
        code = "ConflictException"

    def query_vectors(self):
        index = self.s3vectors_backend.get_index(
            self._get_param("vectorBucketName"),
            self._get_param("indexName"),
            self._get_param("indexArn"),
        )
        if self._get_param("filter") is not None:
            raise ValidationError("the local emulator does not evaluate metadata filters")
        top_k = self._get_param("topK")
        query = (self._get_param("queryVector") or {}).get("float32")
        if not isinstance(top_k, int) or not 1 <= top_k <= 100:
            raise ValidationError("topK must be between 1 and 100")
        if not query or len(query) != index.dimension:
            raise ValidationError(
                f"Query vector dimension {len(query or [])} does not match index dimension "
                f"{index.dimension}"
            )
        distance = cosine_distance if index.distance_metric == "cosine" else euclidean_distance
        scored = sorted(
            (distance(query, v.data["float32"]), key, v)
            for key, v in index.vectors.items()
        )[:top_k]
        vectors = []
        for d, key, vector in scored:
            found = {"key": key}
            if self._get_param("returnDistance"):
                found["distance"] = d
            if self._get_param("returnMetadata"):
                found["metadata"] = vector.metadata
            vectors.append(found)
        return ActionResult({"vectors": vectors, "distanceMetric": index.distance_metric})

    create_index = S3VectorsBackend.create_index

    def create_index_once(self, vector_bucket_name, vector_bucket_arn, index_name, *args, **kw):
        bucket = self.get_vector_bucket(vector_bucket_name, vector_bucket_arn)
        if any(i.index_name == index_name for i in bucket.indexes.values()):
            raise Conflict("An index with the same name already exists")
        return create_index(self, vector_bucket_name, vector_bucket_arn, index_name, *args, **kw)

    S3VectorsResponse.query_vectors = query_vectors
    S3VectorsBackend.create_index = create_index_once
    urls.url_paths["{0}/QueryVectors$"] = S3VectorsResponse.dispatch


def refuse_unusable_keys():
    """Teaches moto's KMS to refuse a disabled key, or one pending deletion, and a KeyId other than
    the ciphertext's, as KMS does."""
    from moto.core.exceptions import JsonRESTError
    from moto.kms.models import KmsBackend

    def check(key):
        if key is None or key.key_state == "Enabled":
            return
        if key.key_state == "Disabled":
            raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
        raise JsonRESTError("KMSInvalidStateException", f"{key.arn} is {key.key_state}.")

    encrypt, decrypt = KmsBackend.encrypt, KmsBackend.decrypt

    def encrypt_enabled(self, key_id, *args, **kw):
        try:
            key = self.keys.get(self.any_id_to_key_id(key_id))
        except Exception:  # an id of no key: moto's own answer
            key = None
        check(key)
        return encrypt(self, key_id, *args, **kw)

    def decrypt_enabled(self, ciphertext_blob, encryption_context, key_id=None):
        plaintext, arn = decrypt(self, ciphertext_blob, encryption_context)
        key = next((k for k in self.keys.values() if k.arn == arn), None)
        # KMS answers a KeyId other than the ciphertext's key with IncorrectKeyException (moto:
        # AccessDeniedException, which reads as a key refused by its policy).
        if key_id is not None and key is not None and self.any_id_to_key_id(key_id) != key.id:
            raise JsonRESTError(
                "IncorrectKeyException",
                "The key ID in the request does not identify a KMS key that can perform this "
                "operation.",
            )
        check(key)
        return plaintext, arn

    KmsBackend.encrypt = encrypt_enabled
    KmsBackend.decrypt = decrypt_enabled


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve_s3_vectors_queries()
    refuse_unusable_keys()
    app = OneAtATime(AwsChecks(DomainDispatcherApplication(create_backend_app)))
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
