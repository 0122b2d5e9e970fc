//! `bench-retrieval`, run by `cargo xtask bench retrieval` (release): retrieval at the size issue
//! 17 names, against a local stack of its own, each figure printed as it is measured:
//!
//! 1. ingestion: 50 Markdown documents cut into 50,000 chunks, each stored with a vector of
//!    1,024 dimensions as `promptseal context ingest` stores it (chunk texts sealed and written,
//!    vectors sealed in one segment per document, the commit), without the embedding model
//!    (vectors come from `fixtures::clustered_vectors`): chunks per second;
//! 2. the cold load of that collection from its sealed segments (GetObject, KMS Decrypt, AES-GCM
//!    open, index build), all through the emulator on loopback, with what the fetches alone and
//!    the index build alone take; then the Python peer (`tools/bench_cold_load.py`: boto3,
//!    cryptography and numpy, the same segments through the same emulator) in the same run;
//! 3. retrieve-context's release binary: spawn to its first poll for an event, and its peak
//!    memory after the first query has loaded the collection, under cargo-lambda's emulator.
//!
//! The emulator (moto, one request at a time, in Python) is much slower than S3, KMS and
//! DynamoDB: the figures through it bound what AWS would take from above.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use promptseal::context::chunk::{ChunkBudget, split};
use promptseal::context::collection::{CollectionId, Owner};
use promptseal::context::embed::EmbeddingModel;
use promptseal::context::search::VectorIndex;
use promptseal::envelope::{CachePolicy, Envelope};
use promptseal::fixtures::clustered_vectors;
use promptseal::store::context::{IngestKeys, NewDocument};
use promptseal_devstack::{
    ContextFixture, EmulatedFunction, FunctionSpec, LocalStack, ensure_venv, first_poll,
    function_environment, run, target_dir, unique_name, workspace_root,
};
use serde_json::json;

const DOCUMENTS: usize = 50;
const SECTIONS: usize = 1000;
const DIMENSIONS: u32 = 1024;
const TENANT: &str = "bench";

/// Deterministic prose: `words` words from a small vocabulary, picked by `seed`.
fn prose(seed: usize, words: usize) -> String {
    const VOCABULARY: [&str; 24] = [
        "invoice", "router", "firmware", "refund", "warranty", "account", "delivery", "ticket",
        "customer", "contract", "payment", "shipping", "support", "device", "network", "update",
        "billing", "return", "service", "order", "policy", "window", "manager", "report",
    ];
    (0..words)
        .map(|i| VOCABULARY[(seed * 7 + i * 13 + i / 5) % VOCABULARY.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// A document of `SECTIONS` headed paragraphs of about 60 words: one chunk each.
fn document(n: usize) -> String {
    (0..SECTIONS)
        .map(|s| format!("# Section {n}.{s}\n\n{}.\n\n", prose(n * SECTIONS + s, 60)))
        .collect()
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}

fn main() -> Result<()> {
    let root = workspace_root();
    let venv = ensure_venv(&root)?;
    let local = LocalStack::start_in(&root, &venv, 0, 0)?;
    let rt = tokio::runtime::Runtime::new()?;
    let config = rt.block_on(local.sdk_config());
    let resources = rt.block_on(promptseal_devstack::provision(
        &config,
        &root.join("template.yaml"),
        &unique_name("bench"),
    ))?;
    let ctx = rt.block_on(ContextFixture::new(&config, &resources));
    let collection = CollectionId::new(Owner::Tenant(TENANT.into()), "docs")?;
    let model = EmbeddingModel::new("amazon.titan-embed-text-v2:0", Some(DIMENSIONS))?;

    // 1. Ingestion, without the model.
    let started = Instant::now();
    let documents: Vec<(String, Vec<_>)> = (0..DOCUMENTS)
        .map(|n| {
            let text = document(n);
            let chunks = split(&text, ChunkBudget::default());
            (text, chunks)
        })
        .collect();
    let split_ms = ms(started);
    let total: usize = documents.iter().map(|(_, c)| c.len()).sum();
    let mut vectors = clustered_vectors(17, total, 1000, DIMENSIONS as usize).into_iter();
    println!("{DOCUMENTS} documents cut into {total} chunks in {split_ms:.0} ms");
    let started = Instant::now();
    for (n, (text, chunks)) in documents.iter().enumerate() {
        let doc_vectors: Vec<Vec<f32>> = vectors.by_ref().take(chunks.len()).collect();
        rt.block_on(ctx.store.put_document(
            &collection,
            &model,
            None,
            NewDocument {
                name: &format!("doc-{n:02}.md"),
                sha256: &promptseal::context::document::content_hash(text),
                bytes: text.len() as u64,
                chunks,
                vectors: &doc_vectors,
            },
            IngestKeys {
                text: &ctx.text,
                vectors: &ctx.vectors,
                fingerprints: &ctx.fingerprints,
            },
        ))?;
        if (n + 1) % 10 == 0 {
            eprintln!(
                "  {} documents stored, {:.1} s",
                n + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let ingest_s = started.elapsed().as_secs_f64();
    println!(
        "ingestion through the emulator: {total} chunks in {ingest_s:.1} s = {:.0} chunks/s",
        total as f64 / ingest_s
    );

    // 2. The cold load: a key with nothing cached, as in a new container.
    let cold_key = || {
        Envelope::new(
            aws_sdk_kms::Client::new(&config),
            resources.key_alias("VectorKey"),
            CachePolicy::default(),
        )
    };
    let state = rt
        .block_on(ctx.store.state(&collection))?
        .context("the collection was stored")?;
    let mut loads = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let loaded = rt.block_on(ctx.store.load_state(&collection, &state, &cold_key()))?;
        loads.push(ms(started));
        assert_eq!(loaded.chunks.len(), total);
    }
    println!("cold load through the emulator, 3 runs: {loads:.0?} ms");
    let s3 = aws_sdk_s3::Client::new(&config);
    let bucket = resources.bucket("VectorBucket");
    let started = Instant::now();
    let bytes = rt.block_on(fetch_all(&s3, bucket))?;
    println!(
        "  of which the {DOCUMENTS} GetObject alone (16 at a time): {:.0} ms, {:.0} MB",
        ms(started),
        bytes as f64 / 1e6
    );
    let plain = clustered_vectors(17, total, 1000, DIMENSIONS as usize);
    let started = Instant::now();
    VectorIndex::build(DIMENSIONS as usize, plain.iter().map(Vec::as_slice))?;
    println!("  and the index build alone: {:.0} ms", ms(started));
    drop(plain);

    // The Python peer, on the same segments through the same emulator.
    let manifest = root.join(".local/bench-cold-load.json");
    let segments: Vec<_> = state
        .documents
        .iter()
        .map(|(&document, &(generation, chunks))| {
            let generation = promptseal::context::collection::DocumentGeneration {
                document,
                generation,
            };
            json!({
                "key": format!("{}/{}.{}", collection.path(), document, generation.generation),
                "context": collection.vector_context(&generation),
                "chunks": chunks,
            })
        })
        .collect();
    std::fs::write(
        &manifest,
        serde_json::to_vec(&json!({
            "bucket": bucket, "dimensions": DIMENSIONS, "segments": segments,
        }))?,
    )?;
    if let Some(bench_venv) = std::env::var_os("BENCH_VENV") {
        run(
            std::process::Command::new(Path::new(&bench_venv).join("bin/python"))
                .arg(root.join("tools/bench_cold_load.py"))
                .arg(&manifest)
                .envs(local.env()),
        )?;
    }

    // 3. retrieve-context's release binary.
    let binary = target_dir(&root).join("release/retrieve-context");
    let env = function_environment(
        &root.join("template.yaml"),
        "RetrieveContextFunction",
        &[],
        |id| format!("bench-{id}"),
    )?;
    first_poll(&binary, &env)?;
    let mut starts = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..20 {
        let (t, kib) = first_poll(&binary, &env)?;
        starts.push(t.as_secs_f64() * 1e3);
        rss.push(kib as f64 / 1024.0);
    }
    starts.sort_by(f64::total_cmp);
    rss.sort_by(f64::total_cmp);
    println!(
        "retrieve-context cold start (spawn to first poll), 20 runs: median {:.2} ms \
         (min {:.2}, max {:.2}), peak RSS then median {:.2} MiB",
        starts[10], starts[0], starts[19], rss[10]
    );
    let function = EmulatedFunction::start(
        &FunctionSpec {
            venv: &venv,
            workspace: &root,
            binary: &binary,
            log_dir: &root.join(".local/bench-retrieve-context"),
        },
        local
            .env()
            .into_iter()
            .chain(resources.env())
            .chain([("HOSTED_TENANT_ID".to_owned(), TENANT.to_owned())]),
    )?;
    let request = json!({
        "tenant_id": TENANT, "template_id": "bench", "version": 1,
        "query": prose(7, 12), "collections": ["tenant:docs"], "k": 10, "min_score": -1.0,
    });
    for round in ["first (loads the collection)", "second (warm)"] {
        let started = Instant::now();
        let reply = function.invoke(&request)?;
        let found = reply["chunks"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(found == 10, "retrieve-context answered {reply}");
        println!(
            "retrieve-context {round} query, through the emulators: {:.0} ms",
            ms(started)
        );
    }
    println!(
        "retrieve-context peak RSS with the collection loaded: {:.1} MiB",
        function.peak_rss_kib()? as f64 / 1024.0
    );
    Ok(())
}

/// Every object of the bucket, fetched 16 at a time; their total size.
async fn fetch_all(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<usize> {
    use futures::{StreamExt, TryStreamExt};
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await?;
    let keys: Vec<String> = listed
        .iter()
        .flat_map(|page| page.contents())
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    let sizes: Vec<usize> = futures::stream::iter(keys)
        .map(|key| async move {
            let body = s3.get_object().bucket(bucket).key(key).send().await?;
            Ok::<_, anyhow::Error>(body.body.collect().await?.into_bytes().len())
        })
        .buffered(16)
        .try_collect()
        .await?;
    Ok(sizes.iter().sum())
}
