//! redact-log end to end on the Python peer's corpus (../shared/peers/gen_corpus.py: 2,000
//! CloudWatch Logs subscription events of 20 Bedrock invocation-log records each, ~10 % of the
//! replies repeating 40-90 words of the template): decode (base64, gunzip), parse the payload and
//! every record, attribute it, read its bodies, redact the ISV blocks, scan and redact the reply
//! with the template's fingerprints, serialise the payload record. MB/s of decompressed log JSON,
//! one core: the peer's unit.
//!
//! The corpus carries the peer's block map (`isv_blocks: "sys:0,msg0:0,msg0:2"`); before timing,
//! each record's requestMetadata is rewritten as invoke writes it (`RequestMetadata`, block map
//! `s:I,m0:IUI`) and the events are encoded again. Run with `cargo xtask bench redact`, which
//! generates the corpus and runs the peer's own benchmark after this one.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;

use base64::Engine;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use promptseal::leak::{DEFAULT_MIN_SPAN, Fingerprints, LeakPolicy, LeakSettings};
use promptseal::metadata::RequestMetadata;
use redact_log::invocation_log::{self, BodyRef, InvocationLog};
use serde_json::{Value, json};

fn data_dir() -> PathBuf {
    std::env::var_os("PEER_REDACT_DATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/peers/data"),
        PathBuf::from,
    )
}

fn read(name: &str) -> Vec<u8> {
    let path = data_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `cargo xtask bench redact` to generate the peer's corpus",
            path.display()
        )
    })
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The corpus's events with promptseal's requestMetadata, and their decompressed size.
fn events() -> (Vec<Vec<u8>>, usize) {
    let mut lines = String::new();
    GzDecoder::new(read("cwl_events.jsonl.gz").as_slice())
        .read_to_string(&mut lines)
        .unwrap();
    let mut raw_bytes = 0;
    let events = lines
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap();
            let gz = b64()
                .decode(event["awslogs"]["data"].as_str().unwrap())
                .unwrap();
            let mut payload: Value =
                serde_json::from_reader(GzDecoder::new(gz.as_slice())).unwrap();
            for log_event in payload["logEvents"].as_array_mut().unwrap() {
                let mut record: Value =
                    serde_json::from_str(log_event["message"].as_str().unwrap()).unwrap();
                let md = &record["requestMetadata"];
                assert_eq!(md["isv_blocks"], "sys:0,msg0:0,msg0:2");
                let ours = RequestMetadata {
                    tenant_id: md["tenant_id"].as_str().unwrap().into(),
                    principal: None,
                    template_id: md["template_id"].as_str().unwrap().into(),
                    template_version: md["template_version"].as_str().unwrap().parse().unwrap(),
                    request_id: None,
                    block_map: "s:I,m0:IUI".into(),
                };
                record["requestMetadata"] = json!(ours.to_entries().unwrap());
                log_event["message"] = json!(record.to_string());
            }
            let raw = payload.to_string();
            raw_bytes += raw.len();
            let mut gz = GzEncoder::new(Vec::new(), Compression::new(6));
            gz.write_all(raw.as_bytes()).unwrap();
            let data = b64().encode(gz.finish().unwrap());
            json!({ "awslogs": { "data": data } })
                .to_string()
                .into_bytes()
        })
        .collect();
    (events, raw_bytes)
}

/// Fingerprints of every template version in the corpus, from its text (as `template put` would
/// compute them).
fn fingerprints() -> HashMap<(String, u32), Fingerprints> {
    let texts: HashMap<String, Vec<String>> =
        serde_json::from_slice(&read("isv_texts.json")).unwrap();
    texts
        .into_iter()
        .map(|(id, parts)| {
            let (template, version) = id.split_once('@').unwrap();
            let fp = Fingerprints::of_template(
                parts.iter().map(String::as_str),
                // The peer redacts what it finds; so do these versions.
                LeakSettings {
                    policy: LeakPolicy::Redact,
                    min_span: DEFAULT_MIN_SPAN,
                },
                [3; 16],
            );
            ((template.to_owned(), version.parse().unwrap()), fp)
        })
        .collect()
}

/// What the handler does with one event, with the stores replaced by what is already in memory:
/// the serialised records and how many replies were redacted.
fn redact_event(event: &[u8], fps: &HashMap<(String, u32), Fingerprints>) -> (Vec<u8>, usize) {
    let data = invocation_log::decode(event).unwrap();
    let mut out = Vec::with_capacity(data.log_events.len() * 6_000);
    let mut redacted = 0;
    for log_event in &data.log_events {
        let log = InvocationLog::parse(&log_event.message).unwrap();
        let who = invocation_log::attribute(&log).unwrap();
        let fp = &fps[&(who.meta.template_id.clone(), who.meta.template_version)];
        let (BodyRef::Inline(input), BodyRef::Inline(output)) =
            (log.input_body().unwrap(), log.output_body().unwrap())
        else {
            panic!("the corpus has inline bodies");
        };
        let prompt = invocation_log::prompt(&log.operation, input.as_bytes()).unwrap();
        let reply = invocation_log::reply(&log.operation, output.as_bytes()).unwrap();
        let record = invocation_log::redact(&log, who, prompt, reply, fp).unwrap();
        redacted += usize::from(record.guard.findings > 0);
        serde_json::to_writer(&mut out, &record).unwrap();
        out.push(b'\n');
    }
    (out, redacted)
}

fn benches(c: &mut Criterion) {
    let (events, raw_bytes) = events();
    let fps = fingerprints();
    let manifest: Value = serde_json::from_slice(&read("corpus_manifest.json")).unwrap();
    // Every reply the peer planted a leak in is redacted, and no other.
    let redacted: usize = events.iter().map(|e| redact_event(e, &fps).1).sum();
    assert_eq!(
        redacted as u64,
        manifest["records_with_planted_leak"].as_u64().unwrap()
    );
    eprintln!(
        "{} events, {:.1} MB of decompressed log JSON, {redacted} replies redacted",
        events.len(),
        raw_bytes as f64 / 1e6
    );
    let mut group = c.benchmark_group("redact_log");
    group.throughput(Throughput::Bytes(raw_bytes as u64));
    group.sample_size(10);
    group.bench_function("corpus_2000_events", |b| {
        b.iter(|| {
            events
                .iter()
                .map(|e| redact_event(e, &fps).0.len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(redact, benches);
criterion_main!(redact);
