//! Leak-scan throughput on the Python peer's replies (../shared/peers/bench_leakscan.py: 1,000
//! replies of ~1.5 KB, 10% repeating a passage of the 8 KB template) against that template's
//! fingerprints: bytes of reply text per second, one core.
//!
//! Run with `cargo xtask bench leakscan`, which exports the peer's replies to
//! .local/peers/data/leakscan_replies.json and runs the peer's own benchmark in the same session.
//!
//! Then the streaming guard over the same replies in 20-byte deltas: CPU per delta, and the bytes
//! held before a reply's first byte is released.
//!
//! Then the cost of each disguise family: the scan over the replies of one family of the leak
//! evaluation's test part (tests/data/leak_eval_test.jsonl), each against its own template.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use promptseal::leak::{Fingerprints, LeakPolicy, LeakSettings, Scanner, StreamGuard};
use serde::Deserialize;

#[derive(Deserialize)]
struct Corpus {
    template_parts: Vec<String>,
    replies: Vec<String>,
    planted: Vec<bool>,
}

/// The peer's replies, when `cargo xtask bench leakscan` has exported them.
fn corpus() -> Option<Corpus> {
    let path = std::env::var_os("PEER_LEAKSCAN_DATA").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../.local/peers/data/leakscan_replies.json")
        },
        PathBuf::from,
    );
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "{}: not there; the peer's replies are skipped (`cargo xtask bench leakscan` exports \
             them when the peers are present)",
            path.display()
        );
        return None;
    };
    Some(serde_json::from_str(&text).unwrap())
}

fn benches(c: &mut Criterion) {
    let Some(corpus) = corpus() else {
        return;
    };
    let fp = Fingerprints::of_template(
        corpus.template_parts.iter().map(String::as_str),
        LeakSettings::default(),
        [9; 16],
    );
    let scanner = Scanner::new(&fp).with_canary("zq0123456789abcdef");
    // The scanner must find what the peer planted, and nothing in the other replies.
    for (reply, planted) in corpus.replies.iter().zip(&corpus.planted) {
        assert_eq!(!scanner.scan(reply).is_empty(), *planted, "{reply}");
    }
    let bytes: usize = corpus.replies.iter().map(String::len).sum();
    let mut group = c.benchmark_group("leak_scan");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("scan_1000_replies", |b| {
        b.iter(|| {
            corpus
                .replies
                .iter()
                .map(|r| scanner.scan(r).len())
                .sum::<usize>()
        });
    });
    // The verbatim form alone (split, normalise, hash, look up, follow runs): the least a scan
    // does, without the disguised forms.
    group.bench_function("verbatim_only_1000_replies", |b| {
        b.iter(|| {
            corpus
                .replies
                .iter()
                .filter(|r| scanner.repeats_template(r))
                .count()
        });
    });
    group.bench_function("guard_1000_replies_redact", |b| {
        b.iter(|| {
            corpus
                .replies
                .iter()
                .map(|r| scanner.enforce(r, LeakPolicy::Redact).0.findings)
                .sum::<usize>()
        });
    });
    group.finish();
    stream_guard(c, &corpus);
}

/// Size of a typical delta of a streamed reply, in bytes.
const DELTA: usize = 20;

/// The streaming guard as invoke runs it (the sealed fingerprints, the ISV text as sent and a
/// canary) over the same replies cut into 20-byte deltas: CPU per delta, and how much of a reply
/// is held before its first byte is released.
fn stream_guard(c: &mut Criterion, corpus: &Corpus) {
    let fp = Fingerprints::of_template(
        corpus.template_parts.iter().map(String::as_str),
        LeakSettings::default(),
        [9; 16],
    );
    let sent = Fingerprints::of_sent(
        corpus.template_parts.iter().map(|p| Some(p.as_str())),
        LeakSettings::default(),
    );
    let scanner = Scanner::new(&fp)
        .with_sent(&sent)
        .with_canary("zq0123456789abcdef");
    let cut = |reply: &str| -> Vec<String> {
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < reply.len() {
            let mut end = (at + DELTA).min(reply.len());
            while !reply.is_char_boundary(end) {
                end += 1;
            }
            pieces.push(reply[at..end].to_owned());
            at = end;
        }
        pieces
    };
    let streams: Vec<Vec<String>> = corpus.replies.iter().map(|r| cut(r)).collect();
    let deltas: usize = streams.iter().map(Vec::len).sum();
    // The holdback: bytes of the model's reply received before the client's first byte.
    let mut held: Vec<usize> = streams
        .iter()
        .filter_map(|pieces| {
            let mut guard = StreamGuard::new(&scanner, LeakPolicy::Redact);
            let mut received = 0;
            for piece in pieces {
                received += piece.len();
                if !guard.push(piece).ok()?.is_empty() {
                    return Some(received);
                }
            }
            None
        })
        .collect();
    held.sort_unstable();
    eprintln!(
        "stream_guard: {} of {} replies released before their end; bytes received before the \
         first byte released: median {}, 90th percentile {} ({}-byte deltas)",
        held.len(),
        streams.len(),
        held[held.len() / 2],
        held[held.len() * 9 / 10],
        DELTA,
    );
    let mut group = c.benchmark_group("stream_guard");
    group.throughput(Throughput::Elements(deltas as u64));
    group.bench_function("1000_replies_in_20_byte_deltas", |b| {
        b.iter(|| {
            streams
                .iter()
                .map(|pieces| {
                    let mut guard = StreamGuard::new(&scanner, LeakPolicy::Redact);
                    let released: usize = pieces
                        .iter()
                        .map(|p| guard.push(p).map_or(0, |t| t.len()))
                        .sum();
                    released + guard.finish().rest.map_or(0, |t| t.len())
                })
                .sum::<usize>()
        });
    });
    group.finish();
}

#[derive(Deserialize)]
struct EvalHeader {
    templates: HashMap<String, String>,
    min_span: u32,
}

#[derive(Deserialize)]
struct EvalCase {
    template: String,
    family: String,
    text: String,
}

/// Bytes per second of each family of the evaluation's test part: what each disguise costs the
/// scanner, beside the benign replies it mostly sees.
fn families(c: &mut Criterion) {
    let data = include_str!("../tests/data/leak_eval_test.jsonl");
    let mut lines = data.lines();
    let header: EvalHeader = serde_json::from_str(lines.next().unwrap()).unwrap();
    let settings = LeakSettings {
        min_span: header.min_span,
        ..LeakSettings::default()
    };
    let fingerprints: HashMap<String, Fingerprints> = header
        .templates
        .iter()
        .map(|(name, text)| {
            let fp = Fingerprints::of_template([text.as_str()], settings, [7; 16]);
            (name.clone(), fp)
        })
        .collect();
    let mut by_family: BTreeMap<String, Vec<EvalCase>> = BTreeMap::new();
    for line in lines {
        let case: EvalCase = serde_json::from_str(line).unwrap();
        by_family.entry(case.family.clone()).or_default().push(case);
    }
    let mut group = c.benchmark_group("leak_scan_family");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (family, cases) in &by_family {
        let scanners: Vec<(Scanner, &str)> = cases
            .iter()
            .map(|c| (Scanner::new(&fingerprints[&c.template]), c.text.as_str()))
            .collect();
        let bytes: usize = cases.iter().map(|c| c.text.len()).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(family.as_str(), |b| {
            b.iter(|| {
                scanners
                    .iter()
                    .map(|(s, text)| s.scan(text).len())
                    .sum::<usize>()
            });
        });
    }
    group.finish();
}

criterion_group!(leak_scan, benches, families);
criterion_main!(leak_scan);
