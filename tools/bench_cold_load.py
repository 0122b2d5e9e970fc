"""The Python peer of retrieve-context's cold load, run by `cargo xtask bench retrieval` right
after the Rust load of the same collection: what a Python user would write to load the sealed
segments `bench-retrieval` stored, through the same emulator. Per segment, 16 threads at a time
(as the Rust load): GetObject (boto3), KMS Decrypt of its data key under its encryption context,
AES-GCM open (cryptography), then one numpy matrix of unit-length vectors.

usage: bench_cold_load.py MANIFEST   (written by bench-retrieval: bucket, dimensions, and each
segment's key, encryption context and chunk count; endpoint and credentials from the environment)
"""

import json
import os
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import boto3  # noqa: E402
import numpy as np  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

NONCE = 12
HEADER = 12  # b"PSV1", dimensions (u32 LE), count (u32 LE)


def main(path):
    with open(path) as f:
        manifest = json.load(f)
    dimensions = manifest["dimensions"]
    s3 = boto3.client("s3")
    kms = boto3.client("kms")

    def load(segment):
        body = s3.get_object(Bucket=manifest["bucket"], Key=segment["key"])["Body"].read()
        (length,) = struct.unpack_from("<H", body, 0)
        wrapped, sealed = body[2 : 2 + length], body[2 + length :]
        context = segment["context"]
        key = kms.decrypt(CiphertextBlob=wrapped, EncryptionContext=context)["Plaintext"]
        aad = json.dumps(context, sort_keys=True, separators=(",", ":")).encode()
        plain = AESGCM(key).decrypt(sealed[:NONCE], sealed[NONCE:], aad)
        vectors = np.frombuffer(plain, dtype="<f4", offset=HEADER).reshape(-1, dimensions)
        assert len(vectors) == segment["chunks"]
        return vectors

    runs = []
    for _ in range(3):
        started = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            parts = list(pool.map(load, manifest["segments"]))
        vectors = np.vstack(parts)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        runs.append((time.perf_counter() - started) * 1e3)
    print(
        f"Python peer (boto3 + cryptography + numpy), cold load of {len(vectors)} x {dimensions} "
        f"from {len(parts)} sealed segments, 3 runs: {[round(r) for r in runs]} ms"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
