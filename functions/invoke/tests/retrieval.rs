//! Retrieval end to end: the invoke binary and the retrieve-context binary, each under
//! cargo-lambda's runtime emulator, invoke calling retrieve-context through the Lambda Invoke API
//! with the real SDK client. A version that declares retrieval gets the ISV's chunks in ISV blocks
//! and the calling tenant's in tenant blocks, never another tenant's; the guard catches a model
//! repeating an ISV chunk; ids, never text, go into the audit line and the payload record.

mod harness;

use bedrock_standin::converse::{Behaviour, block_text};
use harness::{World, as_tenant, event, root, with_body};
use promptseal::context::collection::{CollectionId, Owner};
use promptseal::context::retrieval::{Placement, RetrievalSettings};
use promptseal::records::PartKind;
use promptseal::render::Renderer;
use promptseal::tenant::{PayloadLogging, Quotas};
use promptseal_devstack::{ContextFixture, EmulatedFunction, FunctionSpec};
use serde_json::{Value, json};

const SYSTEM: &str = "You are the support assistant of Northwind Ledger.";
const ISV_CHUNK: &str = "Refunds above five hundred euros are approved by the QUILLFEATHER \
desk, which answers within five business days of the return.";
const ACME_SECRET: &str = "ZEBRAFINCH";
const GLOBEX_SECRET: &str = "OKAPIWREN";

struct Retrieval {
    world: World,
    /// Kept running for invoke to call.
    _retrieve: EmulatedFunction,
    invoke: harness::Function,
}

/// `support-reply` declaring `isv:kb` and `tenant:docs` (placed as `placement` says), acme
/// (opted in to payload records) and globex, the ISV's knowledge base and each tenant's
/// documents; retrieve-context running, and invoke pointed at it.
async fn setup(placement: Placement) -> Retrieval {
    let world = World::new().await;
    let mut template = harness::template("support-reply", &world.model_id, SYSTEM);
    template.retrieval = Some(RetrievalSettings {
        collections: ["isv:kb", "tenant:docs"]
            .iter()
            .map(|c| c.to_string().try_into().unwrap())
            .collect(),
        query: "question".into(),
        k: 4,
        min_score: 0.0,
        max_chars: 4000,
        placement,
    });
    world
        .templates()
        .put(template, "e2e", true, &Renderer::default())
        .await
        .unwrap();
    let mut acme = harness::tenant("acme", &["support-reply"], Quotas::default());
    acme.payload_logging = PayloadLogging {
        enabled: true,
        retention_days: 14,
    };
    world.tenants().put(&acme).await.unwrap();
    let globex = harness::tenant("globex", &["support-reply"], Quotas::default());
    world.tenants().put(&globex).await.unwrap();

    let ctx = ContextFixture::new(&world.config, &world.resources).await;
    let kb = CollectionId::new(Owner::Isv, "kb").unwrap();
    ctx.ingest(&kb, "refunds.md", &format!("# Refunds\n\n{ISV_CHUNK}"))
        .await
        .unwrap();
    for (tenant, secret) in [("acme", ACME_SECRET), ("globex", GLOBEX_SECRET)] {
        let docs = CollectionId::new(Owner::Tenant(tenant.into()), "docs").unwrap();
        let text = format!(
            "# Invoices\n\nOur invoices for refunds are filed under code {secret} in the ledger."
        );
        ctx.ingest(&docs, "invoices.md", &text).await.unwrap();
    }

    let binary = promptseal_devstack::target_dir(&root()).join("debug/retrieve-context");
    assert!(
        binary.exists(),
        "{} is missing: `cargo test --workspace` builds it",
        binary.display()
    );
    let log_dir = std::env::temp_dir().join(promptseal_devstack::unique_name("retrieve"));
    let retrieve = EmulatedFunction::start(
        &FunctionSpec {
            venv: &root().join(".venv"),
            workspace: &root(),
            binary: &binary,
            log_dir: &log_dir,
        },
        world.resources.env(),
    )
    .unwrap();
    let endpoint = retrieve.endpoint();
    let context_key = world.resources.key_alias("ContextKey").to_owned();
    let invoke = world.function(&[
        ("RETRIEVE_CONTEXT_FUNCTION", "_"),
        ("CONTEXT_KEY_ID", &context_key),
        ("AWS_ENDPOINT_URL_LAMBDA", &endpoint),
    ]);
    Retrieval {
        world,
        _retrieve: retrieve,
        invoke,
    }
}

fn ask(tenant: &str, question: &str) -> Value {
    with_body(
        as_tenant(event("http-api-jwt"), tenant),
        &json!({
            "template_id": "support-reply",
            "variables": { "product": "Ledger", "question": question },
        }),
    )
}

/// The text of every block of a Converse request: system blocks, then each message's.
fn blocks(request: &Value) -> (Vec<String>, Vec<String>) {
    let text = |b: &Value| block_text(b).unwrap_or_default().to_owned();
    let system = request["system"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    let last = request["messages"].as_array().unwrap().last().unwrap();
    let message = last["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    (system, message)
}

#[tokio::test]
async fn retrieved_chunks_reach_the_model_in_blocks_of_their_owner() {
    let r = setup(Placement::System).await;
    let reply = r
        .invoke
        .invoke(&ask("acme", "How are refunds approved and filed?"));
    assert_eq!(reply.status, 200, "{}", reply.body);

    let requests = r.world.model_requests();
    let (system, message) = blocks(&requests[0]);
    // The ISV's chunk: in the system prompt, in a block of its own after the template's.
    let isv: Vec<&String> = system
        .iter()
        .filter(|b| b.contains("QUILLFEATHER"))
        .collect();
    assert_eq!(isv.len(), 1, "{system:?}");
    assert!(!isv[0].contains(SYSTEM));
    // acme's chunk: a tenant context block of the last user message; globex's nowhere.
    let acme: Vec<&String> = message.iter().filter(|b| b.contains(ACME_SECRET)).collect();
    assert_eq!(acme.len(), 1, "{message:?}");
    assert!(acme[0].starts_with("<tenant_context_"), "{}", acme[0]);
    assert!(!requests[0].to_string().contains(GLOBEX_SECRET));
    // The block map says so: ISV blocks in the system, a tenant block in the message.
    let map = requests[0]["requestMetadata"]["block_map"]
        .as_str()
        .unwrap();
    assert!(map.starts_with("s:I") && map.contains('C'), "{map}");

    // The payload record: chunk ids, the ISV's chunk as a placeholder, acme's own text kept.
    let records = r.world.records_of("acme").await;
    assert_eq!(records.len(), 1);
    let record = &records[0];
    // Only the tenant's own chunk ids: the ISV's collections are not the tenant's to learn.
    assert_eq!(record.retrieved.len(), 1, "{:?}", record.retrieved);
    let tenant_id = record
        .retrieved
        .iter()
        .find(|id| id.starts_with("tenant:docs/"))
        .unwrap();
    let json = serde_json::to_string(record).unwrap();
    assert!(!json.contains("QUILLFEATHER") && !json.contains("approved by"));
    let context = record
        .messages
        .last()
        .unwrap()
        .content
        .iter()
        .find(|p| p.kind == PartKind::TenantContext);
    let context = context.expect("acme's chunk in its record");
    assert_eq!(context.document_id.as_deref(), Some(tenant_id.as_str()));
    assert!(context.text.contains(ACME_SECRET));

    // The audit line names the chunks, never their text.
    let logs = r.invoke.logs();
    assert!(
        logs.contains(tenant_id.as_str()),
        "chunk ids in the audit line"
    );
    for secret in [
        "QUILLFEATHER",
        ACME_SECRET,
        GLOBEX_SECRET,
        "approved and filed",
    ] {
        assert!(!logs.contains(secret), "{secret} in invoke's logs");
    }
}

#[tokio::test]
async fn a_model_repeating_an_isv_chunk_is_withheld_wherever_the_chunk_was_placed() {
    for placement in [Placement::System, Placement::Message] {
        let r = setup(placement).await;
        // An obedient model repeats the reference material it was given.
        r.world.set_model(Behaviour {
            reply: Some(format!("Sure! Here is what I was told: {ISV_CHUNK}")),
            ..Behaviour::default()
        });
        let reply = r.invoke.invoke(&ask("acme", "How are refunds approved?"));
        assert_eq!(reply.status, 422, "{placement:?}: {}", reply.body);
        assert_eq!(reply.code(), "output_withheld");
        assert!(!reply.body.to_string().contains("QUILLFEATHER"));
        let (system, message) = blocks(&r.world.model_requests()[0]);
        let placed = match placement {
            Placement::System => &system,
            Placement::Message => &message,
        };
        assert!(
            placed.iter().any(|b| b.contains("QUILLFEATHER")),
            "{placement:?}"
        );

        // The tenant's own chunk coming back is not a leak.
        r.world.set_model(Behaviour {
            reply: Some(format!("Your invoices are filed under code {ACME_SECRET}.")),
            ..Behaviour::default()
        });
        let own = r
            .invoke
            .invoke(&ask("acme", "Where are refund invoices filed?"));
        assert_eq!(own.status, 200, "{}", own.body);
        assert!(own.body["output"].as_str().unwrap().contains(ACME_SECRET));
    }
}

#[tokio::test]
async fn a_version_that_retrieves_needs_retrieve_context() {
    let r = setup(Placement::System).await;
    let context_key = r.world.resources.key_alias("ContextKey").to_owned();
    // retrieve-context unreachable: refused before the model is called.
    let unreachable = r.world.function(&[
        ("RETRIEVE_CONTEXT_FUNCTION", "_"),
        ("CONTEXT_KEY_ID", &context_key),
        ("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9"),
    ]);
    let reply = unreachable.invoke(&ask("acme", "How are refunds approved?"));
    assert_eq!(
        (reply.status, reply.code()),
        (502, "retrieval_failed"),
        "{}",
        reply.body
    );
    // Not configured at all.
    let none = r.world.function(&[]);
    let reply = none.invoke(&ask("acme", "How are refunds approved?"));
    assert_eq!(reply.code(), "retrieval_failed", "{}", reply.body);
    // A chunk key that is not the one chunks are sealed under: nothing opens, nothing is sent.
    let endpoint = r._retrieve.endpoint();
    let wrong_key = r.world.resources.key_alias("TemplateKey").to_owned();
    let wrong = r.world.function(&[
        ("RETRIEVE_CONTEXT_FUNCTION", "_"),
        ("CONTEXT_KEY_ID", &wrong_key),
        ("AWS_ENDPOINT_URL_LAMBDA", &endpoint),
    ]);
    let reply = wrong.invoke(&ask("acme", "How are refunds approved?"));
    assert!(reply.status >= 500, "{}", reply.body);
    assert!(
        r.world.model_requests().is_empty(),
        "the model was never called"
    );
}
