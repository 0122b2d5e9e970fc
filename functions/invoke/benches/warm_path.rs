//! Warm in-process cost of one invoke, network excluded, for the inputs of the Python peer in
//! ../shared/peers (an 8 KB template, four 2 KB context documents, a 1.5 KB reply).
//!
//! The code measured is the function's own: the API Gateway event becomes a `lambda_http` request,
//! the body is parsed and checked, the template is decrypted with a cached data key, rendered and
//! assembled, and the Converse call goes through the real `aws-sdk-bedrockruntime` client
//! (serialising, SigV4 signing, parsing the reply) whose HTTP client answers in process with the
//! peer's Converse response body, and the reply is scanned by the output leak guard against the
//! version's fingerprints and the request's canary. DynamoDB reads and the usage write are network
//! calls and are not part of this figure, as in the peer (the fingerprints are read once, then
//! cached, as in the function).
//!
//! Run with `cargo xtask bench warm`, which prepares the peer's fixtures in .local/peers and runs
//! the peer's own warm benchmark in the same session.

use std::path::PathBuf;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kms::config::Credentials;
use aws_smithy_http_client::test_util::infallible_client_fn;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use criterion::{Criterion, criterion_group, criterion_main};
use invoke::api::{self, InvokeRequest};
use invoke::config::Config;
use invoke::converse::{self, ModelCall};
use invoke::handler::{self, CallLimits, Deps};
use invoke::identity::{self, Caller};
use invoke::logging_check::{CheckReuse, LoggingCheck};
use lambda_http::RequestExt;
use lambda_http::http::{Response, StatusCode};
use promptseal::assembly::assemble;
use promptseal::env::Env;
use promptseal::envelope::{CachePolicy, EncryptionContext, Envelope};
use promptseal::leak::{LeakPolicy, LeakSettings, Scanner};
use promptseal::metadata::RequestMetadata;
use promptseal::render::Renderer;
use promptseal::store::fingerprints::FingerprintStore;
use promptseal::store::records::PayloadStore;
use promptseal::store::sealed::{SealedStores, SealedTables};
use promptseal::store::templates::StoredVersion;
use promptseal::store::tenants::TenantRegistry;
use promptseal::store::usage::UsageLedger;
use promptseal::template::{
    InferenceBounds, MessagePart, Role, TemplateDefinition, TemplateText, VariableSpec,
    VersionMeta, VersionStatus, check_settings, check_variables,
};
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use zeroize::Zeroizing;

const TEMPLATE_ID: &str = "tpl-support-ledger";
const VERSION: u32 = 3;
const MODEL_ID: &str = "anthropic.claude-sonnet-4-20250514-v1:0";
const TENANT_CLAIM: &str = "custom:tenant_id";
const REQUEST_ID: &str = "8d1c2f0e-5b7a-4c1e-9f3d-2a6b8c0d4e1f";
const DATA_KEY: [u8; 32] = [0x5a; 32];

/// The peer's fixtures, turned into this product's formats.
struct Inputs {
    /// An HTTP API (v2) event with a JWT authorizer, its body in this API's request format.
    event: String,
    definition: TemplateDefinition,
    /// The Converse response body, as Bedrock's HTTP body bytes.
    converse_response: Vec<u8>,
}

fn peer_data() -> PathBuf {
    std::env::var_os("PEER_INVOKE_DATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/peers/data/invoke"),
        PathBuf::from,
    )
}

fn read(name: &str) -> Vec<u8> {
    let path = peer_data().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `cargo xtask bench warm`, which prepares the peer's fixtures",
            path.display()
        )
    })
}

fn inputs() -> Inputs {
    let parts: Value = serde_json::from_slice(&read("template_parts.json")).unwrap();
    let mut event: Value = serde_json::from_slice(&read("invoke_event.json")).unwrap();
    let body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();

    // The peer renders the documents and the question into its user part; here the caller's
    // documents become tenant-context blocks and the question a declared variable (user input),
    // so the template keeps everything else and names the question instead.
    let user = parts["user"].as_str().unwrap();
    let (before, rest) = user.split_once("<documents>").unwrap();
    let (_, after) = rest.split_once("</documents>\n\n").unwrap();
    let user = format!(
        "{before}{}\n{{{{ question }}}}\n",
        after.replace("_{{ salt }}", "")
    );

    let mut variables: serde_json::Map<String, Value> = body["variables"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            (k.clone(), Value::String(v))
        })
        .collect();
    variables.insert("question".into(), body["question"].clone());
    let mut specs: Vec<VariableSpec> = variables
        .keys()
        .map(|name| VariableSpec {
            name: name.clone(),
            required: true,
            max_chars: if name == "question" { 8000 } else { 120 },
        })
        .collect();
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    let context: Vec<Value> = body["context_documents"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, d)| json!({"id": format!("kb-{}", i + 1), "text": d["text"]}))
        .collect();
    event["body"] = Value::String(
        json!({
            "template_id": TEMPLATE_ID,
            "version": VERSION,
            "variables": variables,
            "context": context,
        })
        .to_string(),
    );

    Inputs {
        event: event.to_string(),
        definition: TemplateDefinition {
            id: TEMPLATE_ID.into(),
            model_id: MODEL_ID.into(),
            inference: InferenceBounds {
                max_tokens: 1024,
                temperature_min: 0.0,
                temperature_max: 1.0,
                temperature_default: 0.2,
            },
            guardrail: None,
            variables: specs,
            leak_guard: Default::default(),
            retrieval: None,
            prompt_cache: Default::default(),
            system: parts["system"].as_str().unwrap().to_owned(),
            messages: vec![MessagePart {
                role: Role::User,
                text: user,
            }],
        },
        converse_response: read("converse_response.json"),
    }
}

/// AWS as seen from the process, answered in process: KMS hands out and unwraps one data key,
/// DynamoDB returns the sealed fingerprints, and Bedrock returns the peer's Converse response.
/// Anything else is a 400, so a call the warm path should not make shows up as a failed invoke.
async fn canned_aws(converse_response: Vec<u8>, fingerprints_item: String) -> SdkConfig {
    let key = B64.encode(DATA_KEY);
    let http = infallible_client_fn(move |request| {
        let target = request
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let (status, body) = match target {
            "TrentService.GenerateDataKey" => (
                StatusCode::OK,
                json!({"KeyId": "bench", "Plaintext": key, "CiphertextBlob": B64.encode(b"wrapped-by-kms")})
                    .to_string()
                    .into_bytes(),
            ),
            "TrentService.Decrypt" => (
                StatusCode::OK,
                json!({"KeyId": "bench", "Plaintext": key})
                    .to_string()
                    .into_bytes(),
            ),
            "DynamoDB_20120810.GetItem" => (StatusCode::OK, fingerprints_item.clone().into_bytes()),
            _ if request.uri().path().ends_with("/converse") => {
                (StatusCode::OK, converse_response.clone())
            }
            _ => (StatusCode::BAD_REQUEST, b"{}".to_vec()),
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(body)
            .unwrap()
    });
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDBENCH",
            "bench-secret",
            None,
            None,
            "bench",
        ))
        .load()
        .await
}

struct Warm {
    deps: Deps,
    stored: StoredVersion,
    event: String,
}

/// A GetItem response with the version's fingerprints, sealed under the canned KMS data key.
fn fingerprints_item(text: &TemplateText, settings: LeakSettings) -> String {
    let fp = FingerprintStore::compute(text, settings);
    let ciphertext = promptseal::envelope::encrypt(
        &Zeroizing::new(DATA_KEY),
        &fp.to_bytes(),
        &EncryptionContext::fingerprints(TEMPLATE_ID, VERSION),
    );
    json!({"Item": {
        "template_id": {"S": TEMPLATE_ID},
        "version": {"N": VERSION.to_string()},
        "ciphertext": {"B": B64.encode(ciphertext)},
        "wrapped_key": {"B": B64.encode(b"wrapped-by-kms")},
    }})
    .to_string()
}

async fn warm(inputs: Inputs) -> Warm {
    let (text, settings) = inputs.definition.into_parts();
    let item = fingerprints_item(&text, settings.leak_guard);
    let sdk = canned_aws(inputs.converse_response, item).await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let config = Config::read(&Env::new(|name: &str| {
        let value = match name {
            "DEPLOYMENT_MODE" => "tenant-hosted",
            "TENANT_CLAIM" => TENANT_CLAIM,
            "TEMPLATES_TABLE"
            | "TENANTS_TABLE"
            | "USAGE_TABLE"
            | "TEMPLATE_KEY_ID"
            | "FINGERPRINTS_TABLE"
            | "FINGERPRINT_KEY_ID"
            | "PAYLOAD_RECORDS_TABLE" => "bench",
            _ => return None,
        };
        Some(value.to_owned())
    }))
    .unwrap();
    let envelope = Envelope::new(
        aws_sdk_kms::Client::new(&sdk),
        "alias/bench",
        CachePolicy::default(),
    );
    let renderer = Renderer::default();
    check_settings(TEMPLATE_ID, &settings).unwrap();
    renderer.check(&text, &settings.variables).unwrap();
    let plaintext = serde_json::to_vec(&text).unwrap();
    let sealed = envelope
        .seal(
            &plaintext,
            &EncryptionContext::template(TEMPLATE_ID, VERSION),
        )
        .await
        .unwrap();
    let stored = StoredVersion {
        meta: VersionMeta {
            template_id: TEMPLATE_ID.into(),
            version: VERSION,
            status: VersionStatus::Available,
            settings,
            created_by: "bench".into(),
            created_at: "2026-11-01T09:30:00Z".into(),
        },
        sealed,
    };
    let deps = Deps {
        templates: SealedStores::new(&sdk, ddb.clone()).templates(SealedTables {
            templates_table: "bench".into(),
            template_key_id: "alias/bench".into(),
            fingerprints_table: "bench".into(),
            fingerprint_key_id: "alias/bench".into(),
        }),
        tenants: TenantRegistry::new(ddb.clone(), "bench"),
        usage: UsageLedger::new(ddb.clone(), "bench"),
        records: PayloadStore::new(ddb, "bench"),
        retrieval: None,
        logging: LoggingCheck::new(
            aws_sdk_bedrock::Client::new(&sdk),
            Vec::new(),
            CheckReuse {
                ttl: config.logging_check_ttl,
                max_stale: config.logging_check_max_stale,
            },
        ),
        bedrock: aws_sdk_bedrockruntime::Client::new(&sdk),
        renderer,
        config,
    };
    let warm = Warm {
        deps,
        stored,
        event: inputs.event,
    };
    // The first call unwraps the data key through "KMS" and reads the fingerprints; every
    // measured call finds both cached.
    let body = one_invoke(&warm).await;
    assert!(body.contains("\"stop_reason\":\"end_turn\""), "{body}");
    assert!(body.contains("\"action\":\"passed\""), "{body}");
    warm
}

/// One warm invoke from the event text to the response body, as the handler does it after its
/// DynamoDB reads and the (cached) logging check.
async fn one_invoke(warm: &Warm) -> String {
    let request = lambda_http::request::from_str(&warm.event).unwrap();
    let who = identity::caller(request.request_context_ref(), TENANT_CLAIM).unwrap();
    let req = api::parse(request.body().as_ref()).unwrap();
    let meta = &warm.stored.meta;
    check_variables(&meta.settings.variables, &req.variables).unwrap();
    let settings = api::inference_settings(&req.inference, &meta.settings.inference).unwrap();
    let answer = handler::ask_model(
        &warm.deps,
        &who,
        &warm.stored,
        &req,
        REQUEST_ID,
        CallLimits {
            max_tokens: settings.0,
            temperature: settings.1,
            timeout: warm.deps.config.model_timeout,
            deadline: None,
        },
        handler::TenantTerms::default(),
    )
    .await
    .unwrap();
    let response = handler::json_response(&handler::response(
        REQUEST_ID,
        meta,
        &answer.reply,
        answer.guard,
    ));
    match response.into_body() {
        lambda_http::Body::Text(text) => text,
        other => panic!("unexpected body {other:?}"),
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let warm = rt.block_on(warm(inputs()));
    let mut group = c.benchmark_group("invoke_warm");
    group.bench_function("whole_path", |b| {
        b.to_async(&rt).iter(|| one_invoke(&warm));
    });
    stages(&mut group, &rt, &warm);
    group.finish();
}

/// Each step alone, to see where the time goes.
fn stages(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    warm: &Warm,
) {
    let deps = &warm.deps;
    let meta = &warm.stored.meta;
    let request = lambda_http::request::from_str(&warm.event).unwrap();
    let who: Caller = identity::caller(request.request_context_ref(), TENANT_CLAIM).unwrap();
    let req: InvokeRequest = api::parse(request.body().as_ref()).unwrap();
    let text = rt.block_on(deps.templates.decrypt(&warm.stored)).unwrap();
    let rendered = deps.renderer.render(&text, &req.variables).unwrap();
    let documents = req.context_documents();
    let assembled = assemble(
        &rendered,
        &documents,
        None,
        "0123456789abcdef",
        "zq0123456789abcdef",
    );
    let block_map = assembled.block_map();
    let reply = rt.block_on(handler::ask_model(
        deps,
        &who,
        &warm.stored,
        &req,
        REQUEST_ID,
        CallLimits {
            max_tokens: 1024,
            temperature: 0.2,
            timeout: deps.config.model_timeout,
            deadline: None,
        },
        handler::TenantTerms::default(),
    ));
    let answer = reply.unwrap();
    let fingerprints = rt
        .block_on(deps.templates.fingerprints().get(TEMPLATE_ID, VERSION))
        .unwrap();

    group.bench_function("1_event_to_request", |b| {
        b.iter(|| lambda_http::request::from_str(&warm.event).unwrap());
    });
    group.bench_function("2_parse_body_and_caller", |b| {
        b.iter(|| {
            let who = identity::caller(request.request_context_ref(), TENANT_CLAIM);
            (who, api::parse(request.body().as_ref()).unwrap())
        });
    });
    group.bench_function("3_check_variables", |b| {
        b.iter(|| check_variables(&meta.settings.variables, &req.variables).unwrap());
    });
    group.bench_function("4_decrypt_cached_key", |b| {
        b.to_async(rt)
            .iter(|| async { deps.templates.decrypt(&warm.stored).await.unwrap() });
    });
    group.bench_function("5_render", |b| {
        b.iter(|| deps.renderer.render(&text, &req.variables).unwrap());
    });
    group.bench_function("6_assemble_and_metadata", |b| {
        b.iter(|| {
            let assembled = assemble(
                &rendered,
                &documents,
                None,
                &promptseal::random_hex::<8>(),
                &format!("zq{}", promptseal::random_hex::<8>()),
            );
            let map = assembled.block_map();
            (assembled, map)
        });
    });
    group.bench_function("7_converse_sdk_in_process", |b| {
        b.to_async(rt).iter(|| async {
            let metadata = RequestMetadata {
                tenant_id: who.tenant_id.clone(),
                principal: None,
                template_id: meta.template_id.clone(),
                template_version: meta.version,
                request_id: Some(REQUEST_ID.to_owned()),
                block_map: block_map.clone(),
            }
            .to_entries()
            .unwrap();
            converse::call(
                &deps.bedrock,
                ModelCall {
                    model_id: &meta.settings.model_id,
                    assembled: &assembled,
                    max_tokens: 1024,
                    temperature: 0.2,
                    guardrail: None,
                    metadata,
                },
                deps.config.model_timeout,
            )
            .await
            .unwrap()
        });
    });
    group.bench_function("8_leak_guard", |b| {
        b.iter(|| {
            Scanner::new(&fingerprints)
                .with_canary("zq0123456789abcdef")
                .enforce(&answer.reply.text, LeakPolicy::Block)
        });
    });
    group.bench_function("9_response_json", |b| {
        b.iter(|| {
            handler::json_response(&handler::response(
                REQUEST_ID,
                meta,
                &answer.reply,
                answer.guard.clone(),
            ))
        });
    });
}

criterion_group!(invoke_warm, benches);
criterion_main!(invoke_warm);
