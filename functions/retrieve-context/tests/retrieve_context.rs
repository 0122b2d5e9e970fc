//! retrieve-context's binary under cargo-lambda's runtime emulator, against the local stack:
//! what a tenant gets back (its own chunks and the ISV's, sealed, never another tenant's), what
//! it is refused and under which code, what the function logs, and a warm function following a
//! collection that changes. What depends on where vectors are kept runs with both backends: in
//! memory, and in S3 Vectors (the emulator answering QueryVectors by exact search).

use std::path::{Path, PathBuf};

use promptseal::context::collection::{ChunkId, CollectionId, Owner};
use promptseal::envelope::{CachePolicy, Envelope};
use promptseal::render::Renderer;
use promptseal::store::context::{VectorBackend, open_chunk};
use promptseal::store::sealed::SealedStores;
use promptseal::store::tenants::TenantRegistry;
use promptseal::template::TemplateDefinition;
use promptseal::tenant::{TenantSpec, TenantStatus};
use promptseal_devstack::{ContextFixture, EmulatedFunction, FunctionSpec, Resources};
use serde_json::{Value, json};

const ISV_SECRET: &str = "QUILLFEATHER";
const ACME_SECRET: &str = "ZEBRAFINCH";
const GLOBEX_SECRET: &str = "OKAPIWREN";

const TEMPLATE: &str = r#"
id = "kb-faq"
model_id = "amazon.nova-micro-v1:0"
system = "Answer from the reference material."
[inference]
max_tokens = 300
temperature_default = 0.3
[[variables]]
name = "question"
required = true
max_chars = 500
[[messages]]
role = "user"
text = "{{ question }}"
[retrieval]
collections = ["isv:kb", "tenant:docs"]
query = "question"
"#;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct World {
    config: aws_config::SdkConfig,
    resources: Resources,
    ctx: ContextFixture,
}

fn tenant(id: &str) -> TenantSpec {
    TenantSpec {
        tenant_id: id.to_owned(),
        templates: ["kb-faq".to_owned()].into(),
        payload_logging: promptseal::tenant::PayloadLogging {
            enabled: false,
            retention_days: 30,
        },
        quotas: Default::default(),
        export: None,
        preview: false,
        context: None,
    }
}

impl World {
    /// A template declaring `isv:kb` and `tenant:docs`, tenants acme and globex that may use it,
    /// the ISV's knowledge base and each tenant's documents, each with a secret word.
    async fn new() -> Self {
        Self::keeping_vectors_in(VectorBackend::Memory).await
    }

    /// The same, with every collection's vectors kept in `backend`.
    async fn keeping_vectors_in(backend: VectorBackend) -> Self {
        let (config, resources) = promptseal_devstack::fresh_resources().await;
        let ddb = aws_sdk_dynamodb::Client::new(&config);
        let definition: TemplateDefinition = toml::from_str(TEMPLATE).unwrap();
        SealedStores::new(&config, ddb.clone())
            .templates(resources.sealed_tables())
            .put(definition, "test", true, &Renderer::default())
            .await
            .unwrap();
        let registry = TenantRegistry::new(ddb, resources.table("TenantsTable"));
        for id in ["acme", "globex"] {
            registry.put(&tenant(id)).await.unwrap();
        }
        let mut ctx = ContextFixture::new(&config, &resources).await;
        ctx.backend = backend;
        let kb = CollectionId::new(Owner::Isv, "kb").unwrap();
        ctx.ingest(
            &kb,
            "refunds.md",
            &format!(
                "# Refunds\n\nRefunds are approved by the {ISV_SECRET} desk within five days \
                 of the return.\n\n# Shipping\n\nParcels ship from the northern warehouse."
            ),
        )
        .await
        .unwrap();
        for (id, secret) in [("acme", ACME_SECRET), ("globex", GLOBEX_SECRET)] {
            let docs = CollectionId::new(Owner::Tenant(id.into()), "docs").unwrap();
            ctx.ingest(
                &docs,
                "contract.md",
                &format!(
                    "# Contract\n\nThe refund window in our contract is thirty days, code \
                     {secret}.\n\n# Contacts\n\nOur account manager answers refund questions."
                ),
            )
            .await
            .unwrap();
        }
        Self {
            config,
            resources,
            ctx,
        }
    }

    fn start(&self, extra: &[(&str, &str)]) -> EmulatedFunction {
        let log_dir =
            std::env::temp_dir().join(promptseal_devstack::unique_name("retrieve-context"));
        EmulatedFunction::start(
            &FunctionSpec {
                venv: &root().join(".venv"),
                workspace: &root(),
                binary: Path::new(env!("CARGO_BIN_EXE_retrieve-context")),
                log_dir: &log_dir,
            },
            self.resources.env().into_iter().chain(
                [("AWS_LAMBDA_LOG_LEVEL", "TRACE")]
                    .iter()
                    .chain(extra)
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            ),
        )
        .unwrap()
    }

    fn context_key(&self) -> Envelope {
        Envelope::new(
            aws_sdk_kms::Client::new(&self.config),
            self.resources.key_alias("ContextKey"),
            CachePolicy::default(),
        )
    }
}

fn request(tenant: &str, query: &str, collections: &[&str]) -> Value {
    json!({
        "tenant_id": tenant, "template_id": "kb-faq", "version": 1, "query": query,
        "collections": collections, "k": 10, "min_score": -1.0,
    })
}

fn error_type(reply: &Value) -> &str {
    reply["errorType"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {reply}"))
}

#[tokio::test]
async fn a_tenant_gets_its_own_chunks_and_the_isvs_sealed_never_another_tenants() {
    own_chunks_and_the_isvs_never_another_tenants(VectorBackend::Memory).await;
}

#[tokio::test]
async fn a_tenant_gets_its_own_chunks_and_the_isvs_never_another_tenants_from_s3_vectors() {
    own_chunks_and_the_isvs_never_another_tenants(VectorBackend::S3Vectors).await;
}

async fn own_chunks_and_the_isvs_never_another_tenants(backend: VectorBackend) {
    let world = World::keeping_vectors_in(backend).await;
    let kb = CollectionId::new(Owner::Isv, "kb").unwrap();
    let state = world.ctx.store.state(&kb).await.unwrap().unwrap();
    assert_eq!(state.backend, backend);
    let function = world.start(&[]);
    // Asking for globex's secret by its words, as acme, with every collection acme may name.
    let reply = function
        .invoke(&request(
            "acme",
            &format!("refund window contract code {GLOBEX_SECRET}"),
            &["isv:kb", "tenant:docs"],
        ))
        .unwrap();
    let chunks = reply["chunks"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"));
    assert_eq!(chunks.len(), 4, "two ISV chunks and acme's two: {reply}");
    let text = reply.to_string();
    for secret in [ISV_SECRET, ACME_SECRET, GLOBEX_SECRET, "refund window"] {
        assert!(
            !text.contains(secret),
            "{secret} in retrieve-context's reply"
        );
    }
    let scores: Vec<f64> = chunks
        .iter()
        .map(|c| c["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );

    // invoke opens them: acme's as acme's; none of them is globex's.
    let key = world.context_key();
    let mut opened = Vec::new();
    for chunk in chunks {
        let name = chunk["collection"].as_str().unwrap();
        let collection = match name {
            "isv:kb" => CollectionId::new(Owner::Isv, "kb").unwrap(),
            "tenant:docs" => CollectionId::new(Owner::Tenant("acme".into()), "docs").unwrap(),
            other => panic!("unexpected collection {other}"),
        };
        let id: ChunkId = chunk["chunk_id"].as_str().unwrap().parse().unwrap();
        let sealed = serde_json::from_value::<promptseal::context::retrieval::SealedChunk>(
            chunk["sealed"].clone(),
        )
        .unwrap()
        .sealed()
        .unwrap();
        let text = open_chunk(&key, &collection, &id, &sealed).await.unwrap();
        opened.push(text.text);
        // Sealed for acme: it does not open as globex's.
        if name == "tenant:docs" {
            let globex = CollectionId::new(Owner::Tenant("globex".into()), "docs").unwrap();
            assert!(open_chunk(&key, &globex, &id, &sealed).await.is_err());
        }
    }
    let all = opened.join("\n");
    assert!(all.contains(ACME_SECRET) && all.contains(ISV_SECRET));
    assert!(!all.contains(GLOBEX_SECRET));

    // Whatever names it sends, acme reaches no other collection.
    for (collections, code) in [
        (json!(["tenant:globex"]), "collection_forbidden"),
        (json!(["isv:docs"]), "collection_forbidden"),
        (
            json!(["tenant:docs", "isv:secret-kb"]),
            "collection_forbidden",
        ),
    ] {
        let mut req = request("acme", "refund", &[]);
        req["collections"] = collections.clone();
        assert_eq!(
            error_type(&function.invoke(&req).unwrap()),
            code,
            "{collections}"
        );
    }
    for collections in [
        json!(["tenant:globex/docs"]),
        json!(["tenant:../globex/docs"]),
        json!(["docs"]),
        json!([{"owner": "tenant", "tenant": "globex", "name": "docs"}]),
    ] {
        let mut req = request("acme", "refund", &[]);
        req["collections"] = collections.clone();
        let reply = function.invoke(&req).unwrap();
        assert!(reply["errorType"].is_string(), "{collections}: {reply}");
        assert!(!reply.to_string().contains("chunk_id"), "{reply}");
    }
    // Fields it does not know (a filter, a tenant of its choosing) are refused, not ignored.
    let mut filtered = request("acme", "refund", &["tenant:docs"]);
    filtered["filter"] = json!({"tenant": "globex"});
    assert!(function.invoke(&filtered).unwrap()["errorType"].is_string());

    // The logs hold counts and ids: no chunk text, no query.
    let logs = function.logs();
    assert!(logs.contains("retrieved"), "{logs}");
    for secret in [
        ISV_SECRET,
        ACME_SECRET,
        GLOBEX_SECRET,
        "refund window",
        "Refunds are",
    ] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}

fn sample(name: &str) -> Value {
    let path = root().join(format!("events/retrieve-context/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_sample_events_are_answered() {
    let world = World::new().await;
    let function = world.start(&[]);
    let reply = function.invoke(&sample("isv-and-tenant")).unwrap();
    let chunks = reply["chunks"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"));
    assert!(!chunks.is_empty(), "{reply}");
    assert!(chunks.iter().all(|c| c["sealed"]["ciphertext"].is_string()));
    assert_eq!(
        error_type(&function.invoke(&sample("undeclared-collection")).unwrap()),
        "collection_forbidden"
    );
}

#[tokio::test]
async fn what_a_tenant_may_not_read_is_refused_with_a_stable_code() {
    let world = World::new().await;
    let registry = TenantRegistry::new(
        aws_sdk_dynamodb::Client::new(&world.config),
        world.resources.table("TenantsTable"),
    );
    let mut stranger = tenant("initech");
    stranger.templates = ["other".to_owned()].into();
    registry.put(&stranger).await.unwrap();
    registry.put(&tenant("umbrella")).await.unwrap();
    registry
        .set_status("umbrella", TenantStatus::Suspended)
        .await
        .unwrap();
    let function = world.start(&[]);
    let mut no_version = request("acme", "refund", &["isv:kb"]);
    no_version["version"] = json!(7);
    let mut bad_k = request("acme", "refund", &["isv:kb"]);
    bad_k["k"] = json!(0);
    for (req, code) in [
        (request("nobody", "refund", &["isv:kb"]), "tenant_not_found"),
        (
            request("umbrella", "refund", &["isv:kb"]),
            "tenant_suspended",
        ),
        (
            request("initech", "refund", &["isv:kb"]),
            "template_forbidden",
        ),
        (no_version, "template_not_found"),
        (bad_k, "bad_request"),
        (request("acme", " ", &["isv:kb"]), "bad_request"),
        (request("acme", "refund", &[]), "bad_request"),
    ] {
        let reply = function.invoke(&req).unwrap();
        assert_eq!(error_type(&reply), code, "{req}");
    }
}

#[tokio::test]
async fn a_warm_function_follows_its_collections_as_they_change() {
    follows_collections_as_they_change(VectorBackend::Memory).await;
}

#[tokio::test]
async fn a_function_follows_collections_in_s3_vectors_as_they_change() {
    follows_collections_as_they_change(VectorBackend::S3Vectors).await;
}

async fn follows_collections_as_they_change(backend: VectorBackend) {
    let world = World::keeping_vectors_in(backend).await;
    let function = world.start(&[]);
    let ask = || {
        function
            .invoke(&request("acme", "holiday opening hours", &["tenant:docs"]))
            .unwrap()
    };
    assert_eq!(ask()["chunks"].as_array().unwrap().len(), 2);
    let docs = CollectionId::new(Owner::Tenant("acme".into()), "docs").unwrap();
    world
        .ctx
        .ingest(
            &docs,
            "hours.md",
            "# Hours\n\nHoliday opening hours are ten to four.",
        )
        .await
        .unwrap();
    let after = ask();
    let chunks = after["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 3, "{after}");
    let best: ChunkId = chunks[0]["chunk_id"].as_str().unwrap().parse().unwrap();
    let hours = world
        .ctx
        .store
        .document(&docs, "hours.md")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(best.document.document.to_string(), hours.document);

    world
        .ctx
        .store
        .delete_document(&docs, "hours.md")
        .await
        .unwrap();
    assert_eq!(ask()["chunks"].as_array().unwrap().len(), 2);
    // A collection declared but never filled finds nothing, and is no error.
    world.ctx.store.delete_collection(&docs).await.unwrap();
    assert_eq!(ask()["chunks"], json!([]));

    // Deleted and made again without a request in between: its version starts over, and the
    // warm function still sees the new collection, not the one it loaded.
    world
        .ctx
        .ingest(
            &docs,
            "a.md",
            "# A\n\nHoliday opening hours are nine to five.",
        )
        .await
        .unwrap();
    assert_eq!(ask()["chunks"].as_array().unwrap().len(), 1);
    let version = world.ctx.store.state(&docs).await.unwrap().unwrap().version;
    world.ctx.store.delete_collection(&docs).await.unwrap();
    world
        .ctx
        .ingest(
            &docs,
            "b.md",
            "# B\n\nHoliday opening hours are noon to six.",
        )
        .await
        .unwrap();
    assert_eq!(
        world.ctx.store.state(&docs).await.unwrap().unwrap().version,
        version
    );
    let again = ask();
    let b = world
        .ctx
        .store
        .document(&docs, "b.md")
        .await
        .unwrap()
        .unwrap();
    let best: ChunkId = again["chunks"][0]["chunk_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(best.document.document.to_string(), b.document, "{again}");
}

#[tokio::test]
async fn a_tenant_hosted_deployment_serves_its_tenant_and_its_own_collections_only() {
    let world = World::new().await;
    let function = world.start(&[("HOSTED_TENANT_ID", "acme"), ("TENANTS_TABLE", "")]);
    let reply = function
        .invoke(&request("acme", "refund", &["tenant:docs"]))
        .unwrap();
    assert_eq!(reply["chunks"].as_array().unwrap().len(), 2, "{reply}");
    assert_eq!(
        error_type(
            &function
                .invoke(&request("globex", "refund", &["tenant:docs"]))
                .unwrap()
        ),
        "tenant_forbidden"
    );
    assert_eq!(
        error_type(
            &function
                .invoke(&request("acme", "refund", &["isv:kb"]))
                .unwrap()
        ),
        "collection_forbidden"
    );
}
