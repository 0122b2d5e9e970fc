//! The in-memory vector search (`context::search`): top-10 over 50,000 vectors of 1,024
//! dimensions, warm, one core, with its recall@10 against exact search, and the time to build
//! the index from the vectors. The vectors are clustered around 1,000 subjects
//! (`fixtures::clustered_vectors`), the queries are about the same subjects.
//!
//! Run with `cargo xtask bench search`, which also writes the vectors and queries to
//! .local/vector-search/ and runs numpy's exact search over them (tools/bench_vector_search.py,
//! what a Python user would write) in the same session.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use promptseal::context::search::{VectorIndex, exact};
use promptseal::fixtures::clustered_vectors;

const VECTORS: usize = 50_000;
const DIMENSIONS: usize = 1024;
const TOPICS: usize = 1000;
const QUERIES: usize = 100;
const K: usize = 10;

/// Writes vectors as little-endian f32, one after another, for numpy's `fromfile`.
fn write_f32(path: &PathBuf, vectors: &[Vec<f32>]) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for v in vectors {
        for x in v {
            out.write_all(&x.to_le_bytes()).unwrap();
        }
    }
    out.flush().unwrap();
}

fn vector_search(c: &mut Criterion) {
    let mut vectors = clustered_vectors(17, VECTORS + QUERIES, TOPICS, DIMENSIONS);
    let queries = vectors.split_off(VECTORS);
    if let Some(dir) = std::env::var_os("VECTOR_SEARCH_DATA").map(PathBuf::from) {
        std::fs::create_dir_all(&dir).unwrap();
        write_f32(&dir.join("vectors.f32"), &vectors);
        write_f32(&dir.join("queries.f32"), &queries);
        eprintln!("vectors and queries written to {}", dir.display());
    }

    let started = Instant::now();
    let index = VectorIndex::build(DIMENSIONS, vectors.iter().map(Vec::as_slice)).unwrap();
    eprintln!(
        "index of {VECTORS} x {DIMENSIONS} built in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    let (mut found, mut wanted) = (0, 0);
    for query in &queries {
        let truth: Vec<usize> = exact(&vectors, query, K).iter().map(|h| h.index).collect();
        found += index
            .search(query, K, -1.0)
            .iter()
            .filter(|h| truth.contains(&h.index))
            .count();
        wanted += truth.len();
    }
    eprintln!(
        "recall@{K} against exact search over {QUERIES} queries: {:.4}",
        found as f64 / wanted as f64
    );

    let mut group = c.benchmark_group("vector_search");
    let mut next = queries.iter().cycle();
    group.bench_function("index_top10_50k_1024", |b| {
        b.iter(|| index.search(next.next().unwrap(), K, -1.0))
    });
    group.sample_size(10);
    group.bench_function("exact_top10_50k_1024", |b| {
        b.iter(|| exact(&vectors, next.next().unwrap(), K))
    });
    group.finish();
}

criterion_group!(benches, vector_search);
criterion_main!(benches);
