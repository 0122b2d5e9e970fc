//! `promptseal context` against the local stack: ingestion into sealed collections, what an
//! operator sees, the refusals that store nothing, and a run interrupted and resumed.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use bedrock_standin::Control;
use bedrock_standin::converse::Behaviour;
use promptseal::context::collection::{ChunkId, CollectionId, Owner};
use promptseal::envelope::{CachePolicy, Envelope, Sealed};
use promptseal::store::context::{ContextStoreError, open_chunk};
use promptseal_devstack::{ACCOUNT_ID, REGION, Resources, unique_name};
use serde_json::Value;

struct Cli {
    env: Vec<(String, String)>,
    dir: PathBuf,
    resources: Resources,
    config: aws_config::SdkConfig,
}

impl Cli {
    async fn new() -> Self {
        let (config, resources) = promptseal_devstack::fresh_resources().await;
        let dir = std::env::temp_dir().join(promptseal_devstack::unique_name("context"));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            env: resources.env(),
            dir,
            resources,
            config,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_promptseal"));
        command
            .args(args)
            .envs(self.env.iter().cloned())
            .current_dir(&self.dir);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Every item of the context table and every object of the vector bucket: what is stored,
    /// whoever could see it.
    async fn stored(&self) -> (Vec<(String, String)>, Vec<String>) {
        let ddb = aws_sdk_dynamodb::Client::new(&self.config);
        let items = ddb
            .scan()
            .table_name(self.resources.table("ContextTable"))
            .send()
            .await
            .unwrap();
        let mut keys: Vec<(String, String)> = items
            .items()
            .iter()
            .map(|i| {
                (
                    i["pk"].as_s().unwrap().clone(),
                    i["sk"].as_s().unwrap().clone(),
                )
            })
            .collect();
        keys.sort();
        let s3 = aws_sdk_s3::Client::new(&self.config);
        let objects = s3
            .list_objects_v2()
            .bucket(self.resources.bucket("VectorBucket"))
            .send()
            .await
            .unwrap();
        let mut objects: Vec<String> = objects
            .contents()
            .iter()
            .map(|o| o.key().unwrap().to_owned())
            .collect();
        objects.sort();
        (keys, objects)
    }

    /// Checks that the store holds exactly the documents `show` lists: one chunk item per chunk
    /// of each document's current generation, one vector object per document, nothing else.
    async fn assert_consistent(&self, collection: &[&str]) {
        let show = self.json(&[&["context", "show"], collection].concat());
        let docs = show["documents"].as_array().unwrap();
        let (keys, objects) = self.stored().await;
        let chunks: Vec<&(String, String)> = keys
            .iter()
            .filter(|(_, sk)| sk.starts_with("chunk/"))
            .collect();
        let expected: u64 = docs.iter().map(|d| d["chunks"].as_u64().unwrap()).sum();
        assert_eq!(chunks.len() as u64, expected, "chunk items: {chunks:?}");
        assert_eq!(show["collection"]["chunks"].as_u64().unwrap(), expected);
        assert_eq!(objects.len(), docs.len(), "vector objects: {objects:?}");
        for doc in docs {
            let generation = format!(
                "{}.{}",
                doc["document"].as_str().unwrap(),
                doc["generation"]
            );
            let of_doc = chunks
                .iter()
                .filter(|(_, sk)| sk.starts_with(&format!("chunk/{generation}.")))
                .count();
            assert_eq!(of_doc as u64, doc["chunks"].as_u64().unwrap());
            assert!(objects.iter().any(|o| o.ends_with(&generation)));
        }
    }
}

/// A Markdown document of `sections` sections, each long enough to be a chunk of its own.
fn markdown(title: &str, sections: usize) -> String {
    let mut out = format!("# {title}\n\n");
    for i in 0..sections {
        out.push_str(&format!("## {title} part {i}\n\n"));
        for j in 0..12 {
            out.push_str(&format!(
                "The {title} handbook, part {i}, says in sentence {j} what to do about it. "
            ));
        }
        out.push_str("\n\n");
    }
    out
}

fn statuses(ingested: &Value) -> Vec<(String, String)> {
    ingested["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

const KB: [&str; 3] = ["--collection", "kb", "--isv"];

#[tokio::test]
async fn collections_are_ingested_listed_replaced_and_deleted() {
    let cli = Cli::new().await;
    cli.write("kb/returns.md", markdown("returns", 3));
    cli.write("kb/shipping.txt", markdown("shipping", 2));
    cli.write("kb/deep/warranty.md", markdown("warranty", 1));
    cli.write(
        "kb/notes.pdf",
        "not read: directories give their text and Markdown only",
    );

    let first = cli.json(&[&["context", "ingest"], &KB[..], &["kb"]].concat());
    assert_eq!(first["collection"], "isv/kb");
    assert_eq!(
        statuses(&first),
        pairs(&[
            ("kb/deep/warranty.md", "ingested"),
            ("kb/returns.md", "ingested"),
            ("kb/shipping.txt", "ingested"),
        ])
    );
    cli.assert_consistent(&KB).await;

    let list = cli.json(&["context", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["owner"], "isv");
    assert_eq!(list[0]["collection"], "kb");
    assert_eq!(list[0]["model"], "amazon.titan-embed-text-v2:0");
    assert_eq!(list[0]["documents"], 3);
    let text = String::from_utf8(cli.run(&["context", "list"]).stdout).unwrap();
    assert!(text.contains("isv") && text.contains("kb"), "{text}");

    // Nothing changed: nothing is embedded again.
    let again = cli.json(&[&["context", "ingest"], &KB[..], &["kb"]].concat());
    assert!(statuses(&again).iter().all(|(_, s)| s == "unchanged"));

    // A changed file replaces its chunks: the old generation is gone.
    cli.write("kb/returns.md", markdown("refunds", 2));
    let replaced = cli.json(&[&["context", "ingest"], &KB[..], &["kb/returns.md"]].concat());
    assert_eq!(replaced["documents"][0]["status"], "replaced");
    assert_eq!(replaced["documents"][0]["generation"], 2);
    cli.assert_consistent(&KB).await;
    let version = |cli: &Cli| {
        cli.json(&[&["context", "show"], &KB[..]].concat())["collection"]["version"]
            .as_u64()
            .unwrap()
    };
    let before = version(&cli);

    // Deleting a document, then the collection, leaves nothing behind.
    cli.json(
        &[
            &["context", "delete"],
            &KB[..],
            &["--document", "kb/shipping.txt"],
        ]
        .concat(),
    );
    assert!(version(&cli) > before, "readers reload after a delete");
    cli.assert_consistent(&KB).await;
    let missing = cli.fails(
        &[
            &["context", "delete"],
            &KB[..],
            &["--document", "kb/shipping.txt"],
        ]
        .concat(),
    );
    assert!(missing.contains("no document"), "{missing}");
    cli.json(&[&["context", "delete"], &KB[..]].concat());
    assert_eq!(cli.stored().await, (vec![], vec![]));
    assert_eq!(cli.json(&["context", "list"]), Value::Array(vec![]));
    let gone = cli.fails(&[&["context", "show"], &KB[..]].concat());
    assert!(gone.contains("not found"), "{gone}");
}

#[tokio::test]
async fn files_that_cannot_be_read_are_named_and_nothing_is_stored() {
    let cli = Cli::new().await;
    let good = cli.write("good.md", markdown("good", 1));
    let cases = [
        (
            cli.write("latin1.txt", b"caf\xe9 au lait"),
            "not_utf8",
            "offset 3",
        ),
        (cli.write("blank.md", " \n\n\t\n"), "empty", "no text"),
        (
            cli.write("huge.txt", "word ".repeat(1024 * 1024)),
            "too_large",
            "over",
        ),
        (
            cli.write("slides.pdf", "%PDF-1.7"),
            "unsupported_type",
            ".md",
        ),
    ];
    for (path, code, says) in &cases {
        let stderr = cli.fails(
            &[
                &["context", "ingest"][..],
                &KB[..],
                &[good.to_str().unwrap(), path.to_str().unwrap()],
            ]
            .concat(),
        );
        assert!(
            stderr.contains(code) && stderr.contains(says),
            "{code}: {stderr}"
        );
        assert!(stderr.contains("nothing was stored"), "{stderr}");
        assert_eq!(cli.stored().await, (vec![], vec![]), "{code}");
    }
    // A file outside --root has no name in the collection.
    let outside = std::env::temp_dir().join(promptseal_devstack::unique_name("outside") + ".md");
    std::fs::write(&outside, markdown("outside", 1)).unwrap();
    let stderr = cli.fails(
        &[
            &["context", "ingest"][..],
            &KB[..],
            &[outside.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(stderr.contains("outside_root"), "{stderr}");
    assert_eq!(cli.stored().await, (vec![], vec![]));
}

#[tokio::test]
async fn tenant_collections_need_a_registered_tenant_and_keep_one_model() {
    let cli = Cli::new().await;
    let doc = cli.write("contract.md", markdown("contract", 2));
    let doc = doc.to_str().unwrap();
    let acme = ["--collection", "docs", "--tenant", "acme"];
    let stderr = cli.fails(&[&["context", "ingest"][..], &acme[..], &[doc]].concat());
    assert!(stderr.contains("tenant_not_found"), "{stderr}");
    assert_eq!(cli.stored().await, (vec![], vec![]));

    cli.json(&["tenant", "put", "acme"]);
    let done = cli.json(
        &[
            &["context", "ingest"][..],
            &acme[..],
            &["--dimensions", "256", doc],
        ]
        .concat(),
    );
    assert_eq!(done["collection"], "tenant/acme/docs");
    let (keys, objects) = cli.stored().await;
    assert!(keys.iter().all(|(pk, _)| pk == "tenant/acme/docs"));
    assert!(objects.iter().all(|o| o.starts_with("tenant/acme/docs/")));
    let show = cli.json(&[&["context", "show"][..], &acme[..]].concat());
    assert_eq!(show["collection"]["tenant"], "acme");
    assert_eq!(show["collection"]["dimensions"], 256);

    // One collection, one embedding space: another model's vectors are refused.
    let other = cli.write("other.md", markdown("other", 1));
    for model in [
        &["--dimensions", "1024"][..],
        &["--model", "cohere.embed-english-v3"][..],
    ] {
        let stderr = cli.fails(
            &[
                &["context", "ingest"][..],
                &acme[..],
                model,
                &[other.to_str().unwrap()],
            ]
            .concat(),
        );
        assert!(stderr.contains("error: model_mismatch: "), "{stderr}");
    }
    // And its vectors stay where they are kept.
    let stderr = cli.fails(
        &[
            &["context", "ingest"][..],
            &acme[..],
            &["--backend", "s3-vectors", other.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(stderr.contains("error: backend_mismatch: "), "{stderr}");
    // Without --model the collection's own is used.
    cli.json(
        &[
            &["context", "ingest"][..],
            &acme[..],
            &[other.to_str().unwrap()],
        ]
        .concat(),
    );
    cli.assert_consistent(&acme).await;
    // Names are checked: no path tricks in a collection or tenant name.
    let stderr = cli.fails(&["context", "show", "--collection", "../x", "--isv"]);
    assert!(stderr.contains("collection name"), "{stderr}");
}

#[tokio::test]
async fn an_interrupted_ingestion_resumes_without_duplicates() {
    let cli = Cli::new().await;
    // Every embedding takes a while, so the run can be stopped partway.
    let model = format!(
        "amazon.titan-embed-text-v2:{}",
        promptseal_devstack::unique_name("slow")
    );
    Control::new(promptseal_devstack::endpoint_from_env(
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
    ))
    .set_behaviour(
        &model,
        &Behaviour {
            delay_ms: 150,
            ..Behaviour::default()
        },
    )
    .unwrap();
    for name in ["a", "b", "c", "d"] {
        cli.write(&format!("kb/{name}.md"), markdown(name, 3));
    }
    let args = [
        &["context", "ingest"][..],
        &KB[..],
        &["--model", &model, "kb"],
    ]
    .concat();
    let mut child = cli
        .command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let list = cli.json(&["context", "list"]);
        if list[0]["documents"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing ingested"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = cli.json(&["context", "list"])[0]["documents"]
        .as_u64()
        .unwrap();
    assert!(partial < 4, "the run was stopped before the end");

    let resumed = cli.json(&args);
    let statuses = statuses(&resumed);
    assert_eq!(statuses.len(), 4);
    let unchanged = statuses.iter().filter(|(_, s)| s == "unchanged").count();
    assert_eq!(unchanged as u64, partial, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|(_, s)| s == "unchanged" || s == "ingested"),
        "{statuses:?}"
    );
    cli.assert_consistent(&KB).await;
}

/// `scan --collection` audits a text for an ISV collection's documents, by the fingerprints
/// sealed with them at ingestion: the document a transcript repeats (disguised or not) is named,
/// with the offsets, never the text.
#[tokio::test]
async fn scan_finds_which_isv_document_a_text_repeats() {
    let cli = Cli::new().await;
    cli.write(
        "kb/refunds.md",
        "# Refunds\n\nA refund above fifty euros is approved by the duty manager once the \
         customer has returned the parcel to the northern depot.\n",
    );
    cli.write(
        "kb/shipping.md",
        "# Shipping\n\nParcels leave the southern warehouse every weekday morning on the first \
         truck, tracked from the gate.\n",
    );
    cli.json(&[
        "context",
        "ingest",
        "--collection",
        "kb",
        "--isv",
        "--root",
        "kb",
        "kb",
    ]);
    let leaked = cli.write(
        "leaked.txt",
        "Agent: sure. A REFUND above fifty euros is approved by the duty manager once the \
         customer has returned the parcel.",
    );
    let out = cli.run(&[
        "scan",
        "--collection",
        "kb",
        "--json",
        leaked.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let reports: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let found = |name: &str| {
        reports
            .iter()
            .find(|r| r["template_id"] == name)
            .map_or(0, |r| r["findings"].as_array().unwrap().len())
    };
    assert!(found("isv:kb/refunds.md") > 0, "{stdout}");
    assert_eq!(found("isv:kb/shipping.md"), 0, "{stdout}");
    assert!(
        !stdout.contains("duty manager"),
        "the report quotes no text"
    );

    let clean = cli.write(
        "clean.txt",
        "Agent: your parcel is on its way; anything else?",
    );
    let out = cli.run(&["scan", "--collection", "kb", clean.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let stderr = cli.fails(&["scan", "--collection", "nothing", clean.to_str().unwrap()]);
    assert!(stderr.contains("error: collection_not_found: "), "{stderr}");
}

/// The chunk items of `collection`, each opened with `text`: the chunk texts, or the first
/// refusal.
async fn open_chunks(
    cli: &Cli,
    collection: &CollectionId,
    text: &Envelope,
) -> Result<Vec<String>, ContextStoreError> {
    let items = aws_sdk_dynamodb::Client::new(&cli.config)
        .query()
        .table_name(cli.resources.table("ContextTable"))
        .key_condition_expression("pk = :pk AND begins_with(sk, :chunk)")
        .expression_attribute_values(":pk", AttributeValue::S(collection.path()))
        .expression_attribute_values(":chunk", AttributeValue::S("chunk/".into()))
        .send()
        .await
        .unwrap();
    let mut texts = Vec::new();
    for item in items.items() {
        let id: ChunkId = item["sk"].as_s().unwrap()["chunk/".len()..]
            .parse()
            .unwrap();
        let sealed = Sealed {
            ciphertext: item["ciphertext"].as_b().unwrap().clone().into_inner(),
            wrapped_key: item["wrapped_key"].as_b().unwrap().clone().into_inner(),
        };
        texts.push(open_chunk(text, collection, &id, &sealed).await?.text);
    }
    Ok(texts)
}

/// A tenant that brings its own key: the operator registers it (checked: a KMS key ARN in the
/// stack's region, a function only beside it), its documents are sealed under that key and open
/// under no other; a tenant that keeps its documents at home is never ingested into the ISV's
/// store.
#[tokio::test]
async fn a_tenants_own_key_seals_its_documents_and_no_other_opens_them() {
    let cli = Cli::new().await;
    let kms = aws_sdk_kms::Client::new(&cli.config);
    let own = kms.create_key().send().await.unwrap();
    let own = own.key_metadata().unwrap().arn().unwrap().to_owned();
    let elsewhere = own.replace(REGION, "eu-west-1");
    let at_home =
        format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:promptseal-tenant-context-acme");
    for (args, refusal) in [
        (&["--context-key", "alias/acme"][..], "must be a KMS key"),
        (&["--context-key", &elsewhere][..], "the stack's region"),
        (
            &[
                "--context-key",
                &own,
                "--context-function",
                &at_home.replace(ACCOUNT_ID, "999988887777"),
            ][..],
            "in the account and region of the context key",
        ),
        (
            &[
                "--context-key",
                &own,
                "--context-function",
                &at_home.replace("-acme", "-globex"),
            ][..],
            "tenant's own retrieve-context",
        ),
    ] {
        let stderr = cli.fails(&[&["tenant", "put", "acme"][..], args].concat());
        assert!(stderr.contains(refusal), "{args:?}: {stderr}");
    }
    let out = cli.run(&["tenant", "put", "acme", "--context-function", &at_home]);
    assert!(!out.status.success(), "a function needs the tenant's key");
    assert_eq!(cli.json(&["tenant", "list"]), Value::Array(vec![]));

    let doc = cli.write("contract.md", markdown("contract", 2));
    let ingest = |tenant: &str| {
        cli.run(&[
            "context",
            "ingest",
            "--collection",
            "docs",
            "--tenant",
            tenant,
            doc.to_str().unwrap(),
        ])
    };
    // Documents sealed under the stack's key before acme brought its own: a collection keeps one
    // key, so nothing is added under the new one until it is ingested again.
    cli.json(&["tenant", "put", "acme"]);
    assert!(ingest("acme").status.success());
    let acme = cli.json(&["tenant", "put", "acme", "--context-key", &own]);
    assert_eq!(acme["context"]["key_arn"], own.as_str());
    // Its other settings replaced: its key stays, unless cleared on purpose.
    let acme = cli.json(&["tenant", "put", "acme", "--daily-requests", "100"]);
    assert_eq!(acme["context"]["key_arn"], own.as_str());
    let acme = cli.json(&["tenant", "put", "acme", "--clear-context"]);
    assert!(acme.get("context").is_none(), "{acme}");
    let acme = cli.json(&["tenant", "put", "acme", "--context-key", &own]);
    assert_eq!(acme["context"]["key_arn"], own.as_str());
    let before = cli.stored().await;
    let mixed = ingest("acme");
    let stderr = String::from_utf8(mixed.stderr).unwrap();
    assert!(stderr.contains("error: key_mismatch: "), "{stderr}");
    assert_eq!(cli.stored().await, before);
    cli.json(&[
        "context",
        "delete",
        "--collection",
        "docs",
        "--tenant",
        "acme",
    ]);
    assert!(ingest("acme").status.success());
    let docs = CollectionId::new(Owner::Tenant("acme".into()), "docs").unwrap();
    let stack_key = cli.resources.key_alias("ContextKey");
    let with = |key: &str| Envelope::new(kms.clone(), key, CachePolicy::default());
    let texts = open_chunks(&cli, &docs, &with(&own)).await.unwrap();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts.iter().all(|t| t.contains("contract")), "{texts:?}");
    assert!(open_chunks(&cli, &docs, &with(stack_key)).await.is_err());

    // Kept at home: the ISV's store takes none of its documents.
    cli.json(&[
        "tenant",
        "put",
        "acme",
        "--context-key",
        &own,
        "--context-function",
        &at_home,
    ]);
    let refused = ingest("acme");
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert!(
        stderr.contains("error: context_kept_by_tenant: "),
        "{stderr}"
    );
    assert!(cli.json(&["context", "list"]).as_array().unwrap().len() == 1);
}

/// In a tenant's own account (tenant-context.yaml's store, `HOSTED_TENANT_ID`), the CLI ingests
/// that tenant's documents under the stack's key, with no tenant registry, and nothing else.
#[tokio::test]
async fn a_tenants_own_store_keeps_its_documents_and_nothing_else() {
    let mut cli = Cli::new().await;
    cli.env.push(("HOSTED_TENANT_ID".into(), "initech".into()));
    let doc = cli.write("handbook.md", markdown("handbook", 1));
    let doc = doc.to_str().unwrap();
    let own = ["--collection", "docs", "--tenant", "initech"];
    // Set by mistake where the ISV's registry is (this stack's): refused.
    let stderr = cli.fails(&[&["context", "ingest"][..], &own[..], &[doc]].concat());
    assert!(
        stderr.contains("error: hosted_tenant_with_registry: "),
        "{stderr}"
    );
    // A tenant's own account has none.
    cli.env
        .push(("TENANTS_TABLE".into(), unique_name("no-registry")));
    for (owner, refusal) in [
        (&["--isv"][..], "collection_forbidden"),
        (&["--tenant", "acme"][..], "tenant_forbidden"),
    ] {
        let stderr = cli.fails(
            &[
                &["context", "ingest", "--collection", "docs"][..],
                owner,
                &[doc],
            ]
            .concat(),
        );
        assert!(stderr.contains(&format!("error: {refusal}: ")), "{stderr}");
    }
    assert_eq!(cli.stored().await, (vec![], vec![]));
    cli.json(&[&["context", "ingest"][..], &own[..], &[doc]].concat());
    cli.assert_consistent(&own).await;
    let docs = CollectionId::new(Owner::Tenant("initech".into()), "docs").unwrap();
    let stack_key = Envelope::new(
        aws_sdk_kms::Client::new(&cli.config),
        cli.resources.key_alias("ContextKey"),
        CachePolicy::default(),
    );
    assert_eq!(open_chunks(&cli, &docs, &stack_key).await.unwrap().len(), 1);
}
