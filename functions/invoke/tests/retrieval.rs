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
use promptseal::envelope::{CachePolicy, Envelope};
use promptseal::records::PartKind;
use promptseal::render::Renderer;
use promptseal::tenant::TenantContext;
use promptseal::tenant::{PayloadLogging, Quotas};
use promptseal_devstack::{
    ACCOUNT_ID, ContextFixture, EmulatedFunction, FunctionSpec, LambdaEndpoint, REGION, Route,
    provision, unique_name,
};
use serde_json::{Value, json};

const SYSTEM: &str = "You are the support assistant of Northwind Ledger.";
const ISV_CHUNK: &str = "Refunds above five hundred euros are approved by the QUILLFEATHER \
desk, which answers within five business days of the return.";
const ACME_SECRET: &str = "ZEBRAFINCH";
const GLOBEX_SECRET: &str = "OKAPIWREN";

/// acme's secret when its documents are kept in its own account; the same document in the
/// ISV's store says this instead, so a search there shows.
const ACME_HOME_SECRET: &str = "MARSHWARBLER";

/// The name acme's own retrieve-context has in its account (tenant-context.yaml's).
const ACME_FUNCTION: &str = "promptseal-tenant-context-acme";

/// The ISV's retrieve-context, as invoke's RETRIEVE_CONTEXT_FUNCTION names it.
const ISV_FUNCTION: &str = "promptseal-retrieve-context";

struct Retrieval {
    world: World,
    /// The ISV's retrieve-context, and acme's own when it has one, kept running for invoke.
    _retrieve: (EmulatedFunction, Option<EmulatedFunction>),
    /// Their Lambda endpoint, invoke's `AWS_ENDPOINT_URL_LAMBDA`.
    lambda: LambdaEndpoint,
    invoke: harness::Function,
    /// acme's own context key (its ARN), when it brought one.
    acme_key: Option<String>,
}

/// Where acme's documents are kept, and under which key.
#[derive(Clone, Copy, PartialEq)]
enum AcmeContext {
    /// In the ISV's store, under the ISV's context key.
    IsvKey,
    /// In the ISV's store, under a key of acme's own.
    OwnKey,
    /// In acme's own account (tenant-context.yaml), searched by acme's own retrieve-context.
    AtHome,
}

/// `support-reply` declaring `isv:kb` and `tenant:docs` (placed as `placement` says), acme
/// (opted in to payload records) and globex, the ISV's knowledge base and each tenant's
/// documents; retrieve-context running, and invoke pointed at it.
async fn setup(placement: Placement) -> Retrieval {
    setup_for(placement, AcmeContext::IsvKey).await
}

async fn setup_for(placement: Placement, acme_context: AcmeContext) -> Retrieval {
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
    let mut ctx = ContextFixture::new(&world.config, &world.resources).await;
    let kb = CollectionId::new(Owner::Isv, "kb").unwrap();
    ctx.ingest(&kb, "refunds.md", &format!("# Refunds\n\n{ISV_CHUNK}"))
        .await
        .unwrap();
    let invoices = |secret: &str| {
        format!(
            "# Invoices\n\nOur invoices for refunds are filed under code {secret} in the ledger."
        )
    };
    let docs = |tenant: &str| CollectionId::new(Owner::Tenant(tenant.into()), "docs").unwrap();
    ctx.ingest(&docs("globex"), "invoices.md", &invoices(GLOBEX_SECRET))
        .await
        .unwrap();

    let kms = aws_sdk_kms::Client::new(&world.config);
    let mut home = None;
    let acme_key = match acme_context {
        AcmeContext::IsvKey => {
            ctx.ingest(&docs("acme"), "invoices.md", &invoices(ACME_SECRET))
                .await
                .unwrap();
            None
        }
        AcmeContext::OwnKey => {
            let key = kms.create_key().send().await.unwrap();
            let arn = key.key_metadata().unwrap().arn().unwrap().to_owned();
            ctx.text = Envelope::new(kms.clone(), &arn, CachePolicy::default());
            ctx.tenant_key = Some(arn.clone());
            ctx.ingest(&docs("acme"), "invoices.md", &invoices(ACME_SECRET))
                .await
                .unwrap();
            Some(arn)
        }
        AcmeContext::AtHome => {
            // What the ISV's store holds for acme is never searched for it.
            ctx.ingest(&docs("acme"), "invoices.md", &invoices(ACME_SECRET))
                .await
                .unwrap();
            let template = root().join("tenant-context.yaml");
            let resources = provision(&world.config, &template, &unique_name("acme-home"))
                .await
                .unwrap();
            let at_home = ContextFixture::new(&world.config, &resources).await;
            at_home
                .ingest(&docs("acme"), "invoices.md", &invoices(ACME_HOME_SECRET))
                .await
                .unwrap();
            let key = kms
                .describe_key()
                .key_id(resources.key_alias("ContextKey"))
                .send()
                .await
                .unwrap();
            home = Some(resources);
            Some(key.key_metadata().unwrap().arn().unwrap().to_owned())
        }
    };
    let acme_function = format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{ACME_FUNCTION}");

    let mut acme = harness::tenant("acme", &["support-reply"], Quotas::default());
    acme.payload_logging = PayloadLogging {
        enabled: true,
        retention_days: 14,
    };
    acme.context = acme_key.clone().map(|key_arn| TenantContext {
        key_arn,
        function: home.is_some().then(|| acme_function.clone()),
    });
    world.tenants().put(&acme).await.unwrap();
    let globex = harness::tenant("globex", &["support-reply"], Quotas::default());
    world.tenants().put(&globex).await.unwrap();

    let binary = promptseal_devstack::target_dir(&root()).join("debug/retrieve-context");
    assert!(
        binary.exists(),
        "{} is missing: `cargo test --workspace` builds it",
        binary.display()
    );
    let run = |name: &str, env: Vec<(String, String)>| {
        let log_dir = std::env::temp_dir().join(unique_name(name));
        let spec = FunctionSpec {
            venv: &root().join(".venv"),
            workspace: &root(),
            binary: &binary,
            log_dir: &log_dir,
        };
        EmulatedFunction::start(&spec, env).unwrap()
    };
    let isv = run("retrieve", world.resources.env());
    let mut functions = vec![(ISV_FUNCTION.to_owned(), isv.endpoint())];
    // acme's own retrieve-context, in its account as tenant-context.yaml deploys it.
    let at_home = home.map(|home| {
        let mut env = home.env();
        env.push(("HOSTED_TENANT_ID".to_owned(), "acme".to_owned()));
        let function = run("retrieve-acme", env);
        functions.push((acme_function.clone(), function.endpoint()));
        function
    });
    let lambda = LambdaEndpoint::start(functions).unwrap();
    let context_key = world.resources.key_alias("ContextKey").to_owned();
    let invoke = world.function(&[
        ("RETRIEVE_CONTEXT_FUNCTION", ISV_FUNCTION),
        ("CONTEXT_KEY_ID", &context_key),
        ("AWS_ENDPOINT_URL_LAMBDA", &lambda.url()),
    ]);
    Retrieval {
        world,
        _retrieve: (isv, at_home),
        lambda,
        invoke,
        acme_key,
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
    let wrong_key = r.world.resources.key_alias("TemplateKey").to_owned();
    let wrong = r.world.function(&[
        ("RETRIEVE_CONTEXT_FUNCTION", ISV_FUNCTION),
        ("CONTEXT_KEY_ID", &wrong_key),
        ("AWS_ENDPOINT_URL_LAMBDA", &r.lambda.url()),
    ]);
    let reply = wrong.invoke(&ask("acme", "How are refunds approved?"));
    assert!(reply.status >= 500, "{}", reply.body);
    assert!(
        r.world.model_requests().is_empty(),
        "the model was never called"
    );
}

/// The tenant-context blocks of the last model request.
fn tenant_blocks(world: &World) -> Vec<String> {
    let requests = world.model_requests();
    let (_, message) = blocks(requests.last().unwrap());
    message
        .into_iter()
        .filter(|b| b.starts_with("<tenant_context_"))
        .collect()
}

/// acme's question, refused with `(status, code)` before the model is called.
fn refused_before_the_model(r: &Retrieval, question: &str, expected: (u16, &str)) -> Value {
    let calls = r.world.model_requests().len();
    let reply = r.invoke.invoke(&ask("acme", question));
    assert_eq!((reply.status, reply.code()), expected, "{}", reply.body);
    assert_eq!(
        r.world.model_requests().len(),
        calls,
        "the model was called"
    );
    reply.body
}

/// Switches acme's own key off (or on again), as acme's key administrator would.
async fn set_acme_key(r: &Retrieval, enabled: bool) {
    let kms = aws_sdk_kms::Client::new(&r.world.config);
    // KMS takes the key's ARN here too; moto only its id.
    let key = r.acme_key.as_deref().unwrap().rsplit('/').next().unwrap();
    if enabled {
        kms.enable_key().key_id(key).send().await.unwrap();
    } else {
        kms.disable_key().key_id(key).send().await.unwrap();
    }
}

/// acme's key switched off: acme's next request is refused before the model is called, with
/// none of its text anywhere; other tenants are served as before; switched on, acme is too.
async fn acme_switches_off_and_on(r: &Retrieval, acme_secret: &str) {
    set_acme_key(r, false).await;
    let refused = refused_before_the_model(
        r,
        "Where are refund invoices filed?",
        (403, "context_key_refused"),
    );
    assert!(!refused.to_string().contains(acme_secret));
    let globex = r
        .invoke
        .invoke(&ask("globex", "Where are refund invoices filed?"));
    assert_eq!(globex.status, 200, "{}", globex.body);
    assert!(tenant_blocks(&r.world)[0].contains(GLOBEX_SECRET));

    set_acme_key(r, true).await;
    let again = r
        .invoke
        .invoke(&ask("acme", "Where are refund invoices filed?"));
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(!r.invoke.logs().contains(acme_secret));
}

#[tokio::test]
async fn a_tenant_that_brings_its_own_key_is_answered_through_it_and_can_switch_it_off() {
    let r = setup_for(Placement::System, AcmeContext::OwnKey).await;
    let reply = r
        .invoke
        .invoke(&ask("acme", "Where are refund invoices filed?"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let acme = tenant_blocks(&r.world);
    assert_eq!(acme.len(), 1, "{acme:?}");
    assert!(acme[0].contains(ACME_SECRET));
    // Warm now, with acme's data key unwrapped once: switching the key off still works at once.
    acme_switches_off_and_on(&r, ACME_SECRET).await;

    // Registered with another key and not ingested again: its chunks open under no other key.
    let kms = aws_sdk_kms::Client::new(&r.world.config);
    let other = kms.create_key().send().await.unwrap();
    let mut acme = r.world.tenants().get("acme").await.unwrap().unwrap().spec;
    acme.context = Some(TenantContext {
        key_arn: other.key_metadata().unwrap().arn().unwrap().to_owned(),
        function: None,
    });
    r.world.tenants().put(&acme).await.unwrap();
    refused_before_the_model(
        &r,
        "Where are refund invoices filed?",
        (500, "context_integrity"),
    );
}

#[tokio::test]
async fn a_tenant_that_keeps_its_context_at_home_is_searched_there_and_only_there() {
    let r = setup_for(Placement::System, AcmeContext::AtHome).await;
    let reply = r.invoke.invoke(&ask(
        "acme",
        "How are refunds approved and where are invoices filed?",
    ));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let requests = r.world.model_requests();
    let (system, _) = blocks(&requests[0]);
    // The ISV's knowledge from the ISV's store, acme's documents from acme's own account alone.
    assert!(
        system.iter().any(|b| b.contains("QUILLFEATHER")),
        "{system:?}"
    );
    let acme = tenant_blocks(&r.world);
    assert_eq!(acme.len(), 1, "{acme:?}");
    assert!(acme[0].contains(ACME_HOME_SECRET), "{}", acme[0]);
    let sent = requests[0].to_string();
    assert!(!sent.contains(ACME_SECRET) && !sent.contains(GLOBEX_SECRET));
    // The payload record names the chunk by id, from acme's collection.
    let records = r.world.records_of("acme").await;
    assert_eq!(records[0].retrieved.len(), 1, "{:?}", records[0].retrieved);
    assert!(records[0].retrieved[0].starts_with("tenant:docs/"));

    // Another tenant is never sent to acme's function, nor given acme's documents.
    let globex = r
        .invoke
        .invoke(&ask("globex", "Where are refund invoices filed?"));
    assert_eq!(globex.status, 200, "{}", globex.body);
    let blocks = tenant_blocks(&r.world);
    assert!(blocks[0].contains(GLOBEX_SECRET) && !blocks[0].contains(ACME_HOME_SECRET));

    // acme's key policy is its off-switch for what it keeps at home too.
    acme_switches_off_and_on(&r, ACME_HOME_SECRET).await;
}

/// acme's own function is acme's to program: it may claim the best scores there are, answer
/// for the ISV's collection, or fail with a message of its choosing. None of it moves the ISV's
/// chunks out of the prompt, gets anything opened as the ISV's, or reaches the ISV's logs.
#[tokio::test]
async fn a_tenants_own_function_cannot_outrank_claim_or_write_into_the_isvs() {
    let r = setup_for(Placement::System, AcmeContext::AtHome).await;
    let question = "How are refunds approved and where are invoices filed?";
    let home = r._retrieve.1.as_ref().unwrap();
    let honest = home
        .invoke(&json!({
            "tenant_id": "acme",
            "template_id": "support-reply",
            "version": 1,
            "query": question,
            "collections": ["tenant:docs"],
            "k": 4,
            "min_score": 0.0,
        }))
        .unwrap();
    let mut chunk = honest["chunks"][0].clone();
    assert!(chunk["sealed"].is_object(), "{honest}");
    let acme_function = format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{ACME_FUNCTION}");
    let answer = |chunks: Vec<Value>| {
        let mut answer = honest.clone();
        answer["chunks"] = Value::Array(chunks);
        Route::Answer {
            error: false,
            payload: answer,
        }
    };

    // Its real chunk, k times over, scored above anything the ISV's could score.
    chunk["score"] = json!(1e30);
    r.lambda
        .route(&acme_function, answer(vec![chunk.clone(); 4]));
    let reply = r.invoke.invoke(&ask("acme", question));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (system, _) = blocks(r.world.model_requests().last().unwrap());
    assert!(
        system.iter().any(|b| b.contains("QUILLFEATHER")),
        "the ISV's chunk keeps its place: {system:?}"
    );
    assert_eq!(tenant_blocks(&r.world).len(), 1, "each chunk once");

    // Its chunk relabelled as the ISV's: refused before the model is called.
    let mut claimed = chunk.clone();
    claimed["collection"] = json!("isv:kb");
    r.lambda.route(&acme_function, answer(vec![claimed]));
    refused_before_the_model(&r, question, (502, "tenant_retrieval_failed"));
    // A collection the version does not declare: acme's doing too.
    let mut undeclared = chunk.clone();
    undeclared["collection"] = json!("tenant:other");
    r.lambda.route(&acme_function, answer(vec![undeclared]));
    refused_before_the_model(&r, question, (502, "tenant_retrieval_failed"));
    // A chunk that does not open: acme's doing, not the ISV's integrity failing.
    let mut garbled = chunk.clone();
    garbled["sealed"]["ciphertext"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    r.lambda.route(&acme_function, answer(vec![garbled]));
    refused_before_the_model(&r, question, (502, "tenant_retrieval_failed"));

    // A failure whose type is text of acme's choosing: the ISV's logs keep a code of their own.
    r.lambda.route(
        &acme_function,
        Route::Answer {
            error: true,
            payload: json!({ "errorType": "SPOOFED-ALARM", "errorMessage": "anything" }),
        },
    );
    let reply = r.invoke.invoke(&ask("acme", question));
    assert_eq!(reply.code(), "tenant_retrieval_failed", "{}", reply.body);
    let logs = r.invoke.logs();
    assert!(!logs.contains("SPOOFED-ALARM"));
    assert!(logs.contains("tenant_function_error"));
}
