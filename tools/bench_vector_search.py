"""numpy's exact top-10 over the vectors `cargo xtask bench search` wrote (what a Python user
would write), one core, timed per query in the same session as the Rust benchmark.

usage: bench_vector_search.py DIR DIMENSIONS
"""

import os
import statistics
import sys
import time

# One core, as the Rust search runs: set before numpy loads its BLAS.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402


def main(directory, dimensions):
    dimensions = int(dimensions)
    vectors = np.fromfile(os.path.join(directory, "vectors.f32"), dtype="<f4")
    queries = np.fromfile(os.path.join(directory, "queries.f32"), dtype="<f4")
    vectors = vectors.reshape(-1, dimensions)
    queries = queries.reshape(-1, dimensions)
    started = time.perf_counter()
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    print(f"numpy: normalised {len(vectors)} x {dimensions} in "
          f"{(time.perf_counter() - started) * 1e3:.1f} ms")
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)

    def top10(query):
        scores = vectors @ query
        top = np.argpartition(scores, -10)[-10:]
        return top[np.argsort(-scores[top])]

    for query in queries[:5]:
        top10(query)  # warm up
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for query in queries:
            top10(query)
        rounds.append((time.perf_counter() - started) * 1e3 / len(queries))
    print(f"numpy exact top-10, one core: median {statistics.median(rounds):.3f} ms/query "
          f"(min {min(rounds):.3f}, max {max(rounds):.3f}; {len(rounds)} rounds of "
          f"{len(queries)} queries)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
