//! Export throughput: payload records serialised to JSON Lines, gzip-compressed into objects and
//! digested (SHA-256) for the manifest, as one scheduled export does. Records per second, one core.
//! The records are shaped like real ones: ~1 KB of user input, ~0.5 KB of tenant context, a
//! ~1.5 KB reply, placeholders for three ISV blocks; their words are drawn from a varied
//! vocabulary so that compression does honest work.
//!
//! Run with `cargo bench -p export-logs --bench export` (or `cargo xtask bench export`).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use export_logs::export::{ExportKind, Window, prepare};
use promptseal::fixtures::payload_record;
use promptseal::records::{Part, PartKind, PayloadRecord, RecordMessage, TokenUsage};
use promptseal::store::records::StoredRecord;
use promptseal::template::Role;
use promptseal::tenant::ExportDestination;

const RECORDS: usize = 10_000;

const VOCABULARY: &str = "invoice approval shipment order customer account refund ticket priority \
    router firmware reboot network settings password reset delivery warehouse schedule contract \
    renewal payment card declined balance statement export report quarterly revenue forecast \
    meeting agenda summary action items owner deadline escalation support engineer billing plan \
    upgrade downgrade seats license usage limit quota error timeout retry region backup restore \
    the a of to and in for on with is was be this that it as at by from please thanks could would";

/// Deterministic text of about `len` bytes.
fn text(seed: &mut u64, len: usize) -> String {
    let words: Vec<&str> = VOCABULARY.split_whitespace().collect();
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push_str(words[(*seed >> 33) as usize % words.len()]);
        out.push(if (*seed >> 20).is_multiple_of(11) {
            '.'
        } else {
            ' '
        });
    }
    out
}

fn records() -> Vec<StoredRecord> {
    let mut seed = 7;
    let isv = |place: &str| Part {
        kind: PartKind::Isv,
        document_id: None,
        text: format!("[isv:{place} support@2]"),
    };
    (0..RECORDS)
        .map(|i| StoredRecord {
            position: format!("2026-11-22T09:00:00.{i:06}Z#m-{i}"),
            record: PayloadRecord {
                request_id: format!("c0ffee00-0000-4000-8000-{i:012}"),
                time: format!(
                    "2026-11-22T09:{:02}:{:02}.{:06}Z",
                    i / 3600 % 60,
                    i / 60 % 60,
                    i
                ),
                principal: Some("7f3c9a2e-1b4d-4c6e-9f0a-2d8e5b7c1a3f".into()),
                model_id: "anthropic.claude-3-haiku-20240307-v1:0".into(),
                system: vec![isv("system"), isv("system")],
                messages: vec![RecordMessage {
                    role: Role::User,
                    content: vec![
                        Part {
                            kind: PartKind::TenantContext,
                            document_id: Some(format!("ticket-{i}")),
                            text: text(&mut seed, 500),
                        },
                        isv("message"),
                        Part {
                            kind: PartKind::UserInput,
                            document_id: None,
                            text: text(&mut seed, 1000),
                        },
                    ],
                }],
                output: text(&mut seed, 1500),
                usage: TokenUsage {
                    input_tokens: 600,
                    output_tokens: 350,
                    ..TokenUsage::default()
                },
                ..payload_record("acme", &format!("6f1c2d3e-0000-4000-a000-{i:012}"))
            },
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let records = records();
    let dest = ExportDestination {
        bucket: "acme-logs".into(),
        prefix: "promptseal/".into(),
        account_id: "123456789012".into(),
        kms_key_id: None,
        role_arn: None,
        external_id: None,
    };
    let window = Window {
        from: "2026-11-22T09:00:00.000000Z".into(),
        until: "2026-11-22T10:00:00.000000Z".into(),
    };
    let json_bytes: usize = records
        .iter()
        .map(|r| serde_json::to_vec(&r.record).unwrap().len() + 1)
        .sum();
    let prepared = prepare(
        &dest,
        "acme",
        ExportKind::Scheduled,
        &window,
        records.clone(),
        10_000,
    );
    let gz: usize = prepared.objects.iter().map(|o| o.bytes.len()).sum();
    eprintln!(
        "{RECORDS} records, {:.0} B of JSON each, gzip {:.1}x",
        json_bytes as f64 / RECORDS as f64,
        json_bytes as f64 / gz as f64
    );
    let mut group = c.benchmark_group("export");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(20);
    // The records are cloned outside the timed part: the export takes them by value.
    group.bench_function("serialise_compress_digest_10k", |b| {
        b.iter_batched(
            || records.clone(),
            |records| {
                prepare(
                    &dest,
                    "acme",
                    ExportKind::Scheduled,
                    &window,
                    records,
                    10_000,
                )
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(export, benches);
criterion_main!(export);
