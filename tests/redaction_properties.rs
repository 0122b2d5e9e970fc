//! Property tests of redaction by provenance, through the code both writers use: for generated
//! templates, user inputs, tenant documents and replies (some repeating template text), neither
//! the record invoke writes, nor the record redact-log makes from the Bedrock invocation log of
//! the same request, nor the export of either, holds any run of `min_span` template words; and the
//! user's input and the tenant's documents survive verbatim.

use std::collections::BTreeMap;
use std::io::Read;

use export_logs::export::{ExportKind, Window, prepare};
use promptseal::assembly::{Assembled, Block, BlockKind, ContextDocument, assemble};
use promptseal::leak::{DEFAULT_MIN_SPAN, Fingerprints, LeakPolicy, LeakSettings, Scanner};
use promptseal::metadata::RequestMetadata;
use promptseal::records::{Exchange, PartKind, PayloadRecord, RecordPrompt, Source, TokenUsage};
use promptseal::render::Renderer;
use promptseal::store::records::StoredRecord;
use promptseal::syntax::literal_prefix;
use promptseal::template::{MessagePart, Role, TemplateText};
use promptseal::tenant::ExportDestination;
use proptest::prelude::*;
use redact_log::invocation_log::{self, InvocationLog};
use serde_json::{Value, json};

const MIN_SPAN: usize = DEFAULT_MIN_SPAN as usize;

/// Template words and tenant words come from disjoint alphabets, so any run of template words in
/// a record can only have come from the template.
fn template_words() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[b-df-hj-np-tv-z]{3,9}", 12..60)
}

fn tenant_text() -> impl Strategy<Value = String> {
    prop::collection::vec("[aeiou][0-9aeiou]{2,7}", 1..25).prop_map(|w| w.join(" "))
}

/// Every run of `MIN_SPAN` template words, lower-cased.
fn runs(words: &[String]) -> Vec<String> {
    words.windows(MIN_SPAN).map(|w| w.join(" ")).collect()
}

/// No run of template words in `text`, read as the scanner reads words: an invisible character
/// or a look-alike between two words joins them, to the scanner as to a reader, so a text it
/// was put into does not hold the run as such.
fn assert_no_run(text: &str, runs: &[String]) -> Result<(), TestCaseError> {
    // Whole words only: a run's first word inside a longer one is not that word.
    let flat = format!(" {} ", promptseal::leak::read_words(text).join(" "));
    for run in runs {
        prop_assert!(
            !flat.contains(&format!(" {run} ")),
            "template run {run:?} in {text}"
        );
    }
    Ok(())
}

fn block_json(block: &Block, role: Option<Role>) -> Value {
    match (block.kind, role) {
        (BlockKind::UserInput, None | Some(Role::User)) => {
            json!({ "guardContent": { "text": { "text": block.text.as_str() } } })
        }
        _ => json!({ "text": block.text.as_str() }),
    }
}

/// The system blocks as sent, with the cache point after the first when there is one.
fn system_json(assembled: &Assembled) -> Vec<Value> {
    let mut blocks: Vec<Value> = assembled
        .system
        .iter()
        .map(|b| block_json(b, None))
        .collect();
    if assembled.cache_point {
        blocks.insert(1, json!({ "cachePoint": { "type": "default" } }));
    }
    blocks
}

/// What invoke sends with this request.
fn request_metadata(assembled: &Assembled) -> RequestMetadata {
    RequestMetadata {
        tenant_id: "acme".into(),
        principal: None,
        template_id: "generated".into(),
        template_version: 1,
        request_id: Some("r-1".into()),
        block_map: assembled.block_map(),
    }
}

/// The `ModelInvocationLog` record Bedrock writes for this request (as the stand-in does).
fn invocation_log(assembled: &Assembled, reply: &str) -> String {
    let metadata = request_metadata(assembled).to_entries().unwrap();
    json!({
        "schemaType": "ModelInvocationLog", "schemaVersion": "1.0",
        "timestamp": "2026-11-22T09:00:00Z", "accountId": "111122223333",
        "region": "us-east-1", "requestId": "m-1", "operation": "Converse",
        "modelId": "anthropic.claude", "requestMetadata": metadata,
        "input": {
            "inputContentType": "application/json",
            "inputBodyJson": {
                "system": system_json(assembled),
                "messages": assembled.messages.iter().map(|m| json!({
                    "role": m.role.as_str(),
                    "content": m.blocks.iter().map(|b| block_json(b, Some(m.role))).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            },
            "inputTokenCount": 100,
        },
        "output": {
            "outputContentType": "application/json",
            "outputBodyJson": {
                "output": { "message": { "role": "assistant", "content": [{ "text": reply }] } },
                "stopReason": "end_turn",
            },
            "outputTokenCount": 50,
        },
    })
    .to_string()
}

/// What a tenant receives when `record` is exported.
fn exported(record: &PayloadRecord) -> String {
    let dest = ExportDestination {
        bucket: "acme-logs".into(),
        prefix: String::new(),
        account_id: "123456789012".into(),
        kms_key_id: None,
        role_arn: None,
        external_id: None,
    };
    let window = Window {
        from: "a".into(),
        until: "b".into(),
    };
    let stored = vec![StoredRecord {
        position: "p".into(),
        record: record.clone(),
    }];
    let prepared = prepare(&dest, "acme", ExportKind::Scheduled, &window, stored, 10);
    let mut text = String::new();
    flate2::read::GzDecoder::new(prepared.objects[0].bytes.as_slice())
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn tenant_parts(record: &PayloadRecord, kind: PartKind) -> Vec<String> {
    record
        .system
        .iter()
        .chain(record.messages.iter().flat_map(|m| &m.content))
        .filter(|p| p.kind == kind)
        .map(|p| p.text.clone())
        .collect()
}

/// One generated request: its template's fingerprints and runs, the assembled prompt, the
/// model's reply (perhaps repeating template text) and the tenant's texts.
#[derive(Debug)]
struct Case {
    fp: Fingerprints,
    template_runs: Vec<String>,
    assembled: Assembled,
    reply: String,
    product: String,
    question: String,
    document: String,
}

fn case() -> impl Strategy<Value = Case> {
    (
        template_words(),
        0.0f64..1.0,
        (tenant_text(), tenant_text(), tenant_text(), tenant_text()),
        prop::option::of((0usize..60, 0usize..12)),
        any::<bool>(),
    )
        .prop_map(
            |(words, split, (question, product, document, reply_words), leak, opening)| {
                // The template: ISV words after a variable in the system text and going on into the
                // user message before another: the model reads them as one run of ISV text. Or
                // the system text is all ISV words, a cache point follows them, and both
                // variables are in the message.
                let cut = ((words.len() as f64) * split) as usize;
                let (system, message) = if opening {
                    (
                        words[..cut].join(" "),
                        format!(
                            "{}\n{{{{ product }}}}: {{{{ question }}}}",
                            words[cut..].join(" ")
                        ),
                    )
                } else {
                    (
                        format!("{{{{ product }}}}: {}", words[..cut].join(" ")),
                        format!("{}\n{{{{ question }}}}", words[cut..].join(" ")),
                    )
                };
                let text = TemplateText {
                    system: system.clone(),
                    messages: vec![MessagePart {
                        role: Role::User,
                        text: message,
                    }],
                };
                let fp = Fingerprints::of_template(
                    text.parts().map(|(_, p)| p),
                    LeakSettings {
                        policy: LeakPolicy::Redact,
                        min_span: DEFAULT_MIN_SPAN,
                    },
                    [7; 16],
                );
                let vars = BTreeMap::from([
                    ("product".to_owned(), product.clone()),
                    ("question".to_owned(), question.clone()),
                ]);
                let rendered = Renderer::default().render(&text, &vars).unwrap();
                let docs = [ContextDocument {
                    id: "doc-1".into(),
                    text: document.clone(),
                }];
                let assembled = assemble(
                    &rendered,
                    &docs,
                    None,
                    "0123456789abcdef",
                    "zq00112233445566",
                )
                .with_cache_point(literal_prefix(&system));

                // The model's reply, perhaps repeating a run of the template (within a part or
                // across).
                let mut reply = reply_words.clone();
                if let Some((at, len)) = leak {
                    // Half of the leaks start a little before the cut, so that many cross it with
                    // fewer than `MIN_SPAN` words on either side.
                    let start = if at % 2 == 0 {
                        cut.saturating_sub(1 + at / 2 % (MIN_SPAN - 1))
                    } else {
                        at % words.len().max(1)
                    };
                    let end = (start + MIN_SPAN + len).min(words.len());
                    if end >= start + MIN_SPAN {
                        reply = format!("{reply} {} {reply_words}", words[start..end].join(" "));
                    }
                }
                Case {
                    fp,
                    template_runs: runs(&words),
                    assembled,
                    reply,
                    product,
                    question,
                    document,
                }
            },
        )
}

/// What redact-log makes of one invocation-log message: the record, or why there is none.
fn redact_log_record(
    message: &str,
    fp: &Fingerprints,
) -> Result<PayloadRecord, invocation_log::Skip> {
    let log = InvocationLog::parse(message)?;
    let who = invocation_log::attribute(&log)?;
    let (invocation_log::BodyRef::Inline(input), invocation_log::BodyRef::Inline(output)) =
        (log.input_body()?, log.output_body()?)
    else {
        return Err(invocation_log::Skip::Malformed("body"));
    };
    let prompt = invocation_log::prompt(&log.operation, input.as_bytes())?;
    let reply = invocation_log::reply(&log.operation, output.as_bytes())?;
    invocation_log::redact(&log, who, prompt, reply, fp)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_template_run_survives_in_records_or_exports_and_tenant_text_is_kept(c in case()) {
        // invoke's record.
        let (guard, replacement) = Scanner::new(&c.fp).enforce(&c.reply, LeakPolicy::Redact);
        let prompt = RecordPrompt::of(&c.assembled, "generated", 1);
        let exchange = Exchange {
            source: Source::Invoke,
            model_request_id: "m-1".into(),
            time: "2026-11-22T09:00:00Z".into(),
            model_id: "anthropic.claude".into(),
            prompt,
            output: replacement.unwrap_or_else(|| c.reply.clone()),
            stop_reason: Some("end_turn".into()),
            guard,
            usage: TokenUsage::default(),
            retrieved: Vec::new(),
        };
        let from_invoke = PayloadRecord::new(request_metadata(&c.assembled), exchange);

        // redact-log's record, from the invocation log of the same request.
        let from_log = redact_log_record(&invocation_log(&c.assembled, &c.reply), &c.fp).unwrap();

        for record in [&from_invoke, &from_log] {
            assert_no_run(&serde_json::to_string(record).unwrap(), &c.template_runs)?;
            assert_no_run(&exported(record), &c.template_runs)?;
            prop_assert_eq!(tenant_parts(record, PartKind::UserInput), [c.product.clone(), c.question.clone()]);
            prop_assert_eq!(tenant_parts(record, PartKind::TenantContext), [c.document.clone()]);
        }
        // Both writers make the same record of the same request.
        prop_assert_eq!(&from_invoke.system, &from_log.system);
        prop_assert_eq!(&from_invoke.messages, &from_log.messages);
        prop_assert_eq!(&from_invoke.output, &from_log.output);
    }
}

proptest! {
    // Cheap cases, and many ways to tamper: more of them.
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The log record is data redact-log does not control: whatever its block map calls each
    /// block, and wherever its text is cut or changed, redact-log makes a record without a run
    /// of template words, or none.
    #[test]
    fn a_tampered_log_record_yields_no_template_run(
        c in case(),
        relabel in any::<u64>(),
        damage in prop::option::of((any::<prop::sample::Index>(), any::<char>(), any::<bool>())),
    ) {
        let mut log: Value = serde_json::from_str(&invocation_log(&c.assembled, &c.reply)).unwrap();
        // Each ISV block may be called the user's or the tenant's context.
        let mut bits = relabel;
        for (_, value) in log["requestMetadata"].as_object_mut().unwrap().iter_mut()
            .filter(|(k, _)| k.starts_with("block_map"))
        {
            let relabelled: String = value.as_str().unwrap().chars().map(|ch| {
                let flip = bits & 3;
                bits = bits.rotate_right(2);
                match (ch, flip) {
                    ('I', 1) => 'U',
                    ('I', 2) => 'C',
                    (ch, _) => ch,
                }
            }).collect();
            *value = json!(relabelled);
        }
        let mut message = log.to_string();
        // A character replaced, or the text cut there.
        if let Some((at, replacement, cut)) = damage {
            let boundaries: Vec<usize> = message.char_indices().map(|(i, _)| i).collect();
            let i = boundaries[at.index(boundaries.len())];
            if cut {
                message.truncate(i);
            } else {
                let len = message[i..].chars().next().unwrap().len_utf8();
                message.replace_range(i..i + len, replacement.encode_utf8(&mut [0; 4]));
            }
        }
        if let Ok(record) = redact_log_record(&message, &c.fp) {
            assert_no_run(&serde_json::to_string(&record).unwrap(), &c.template_runs)?;
            assert_no_run(&exported(&record), &c.template_runs)?;
        }
    }
}
