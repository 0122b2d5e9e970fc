//! The sealed template store against the local AWS emulator: envelope round trip, identity binding
//! (moved ciphertexts and wrong contexts fail), the data-key cache bounds, versions and their
//! lifecycle, and refusals that leave nothing behind.

mod common;
mod sweep;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use promptseal::envelope::{CachePolicy, EncryptionContext, Envelope, EnvelopeError, Sealed};
use promptseal::leak::{Fingerprints, Form, LeakSettings, Scanner};
use promptseal::render::Renderer;
use promptseal::store::sealed::{SealedStores, SealedTables};
use promptseal::store::templates::TemplateStoreError;
use promptseal::template::{
    DefinitionError, InferenceBounds, MessagePart, Role, TemplateDefinition, VariableSpec,
    VersionStatus,
};

const CANARY: &str = "CANARY-7f3a-SYSTEM-PROMPT";

fn definition(id: &str) -> TemplateDefinition {
    TemplateDefinition {
        id: id.into(),
        model_id: "anthropic.claude-3-haiku-20240307-v1:0".into(),
        inference: InferenceBounds {
            max_tokens: 256,
            temperature_min: 0.0,
            temperature_max: 0.5,
            temperature_default: 0.1,
        },
        guardrail: None,
        leak_guard: Default::default(),
        retrieval: None,
        prompt_cache: Default::default(),
        variables: vec![VariableSpec {
            name: "question".into(),
            required: true,
            max_chars: 500,
        }],
        system: format!("You are a support assistant. {CANARY}"),
        messages: vec![MessagePart {
            role: Role::User,
            text: "Question: {{ question }}".into(),
        }],
    }
}

fn version_key(v: u32) -> AttributeValue {
    AttributeValue::S(format!("V#{v:010}"))
}

/// Copies one version's ciphertext and wrapped key onto another item, as an attacker with write
/// access to the table could.
async fn move_ciphertext(stack: &common::Stack, from: (&str, u32), to: (&str, u32)) {
    let ddb = stack.ddb();
    let table = stack.resources.table("TemplatesTable");
    let source = ddb
        .get_item()
        .table_name(table)
        .key("template_id", AttributeValue::S(from.0.into()))
        .key("sk", version_key(from.1))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    ddb.update_item()
        .table_name(table)
        .key("template_id", AttributeValue::S(to.0.into()))
        .key("sk", version_key(to.1))
        .update_expression("SET ciphertext = :c, wrapped_key = :k")
        .expression_attribute_values(":c", source["ciphertext"].clone())
        .expression_attribute_values(":k", source["wrapped_key"].clone())
        .send()
        .await
        .unwrap();
}

/// Which of `words` any attribute of `items` holds, in any form the leak sweep knows (binary
/// attributes read as stored and unzipped).
fn stored_text(items: &[HashMap<String, AttributeValue>], words: &[&str]) -> Vec<String> {
    let mut evidence = sweep::Evidence::default();
    for item in items {
        evidence.add_item(sweep::Audience::Operations, "item", item);
    }
    let canaries: Vec<sweep::Canary> = words
        .iter()
        .map(|word| sweep::Canary {
            owner: sweep::Owner::Isv,
            field: "template text",
            token: (*word).to_owned(),
        })
        .collect();
    evidence.violations(&canaries)
}

/// Every item of the fingerprints table, as stored.
async fn fingerprint_items(stack: &common::Stack) -> Vec<HashMap<String, AttributeValue>> {
    stack
        .ddb()
        .scan()
        .table_name(stack.resources.table("FingerprintsTable"))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

#[tokio::test]
async fn fingerprints_are_sealed_beside_each_version_under_a_key_that_opens_no_template() {
    let stack = common::fresh_stack().await;
    let store = stack.template_store(CachePolicy::default());
    let mut def = definition("fp");
    def.system = format!(
        "You are the billing assistant of Northwind Ledger and never discuss refunds. {CANARY}"
    );
    store
        .put(def, "operator-1", true, &Renderer::default())
        .await
        .unwrap();

    let items = fingerprint_items(&stack).await;
    assert_eq!(items.len(), 1, "one fingerprint item per version");
    let stored = stored_text(&items, &["billing", "Northwind", "refunds", CANARY]);
    assert!(stored.is_empty(), "stored in the clear: {stored:?}");

    // What invoke and redact-log get: fingerprints that recognise the text, not the text.
    let fp = store.fingerprints().get("fp", 1).await.unwrap();
    let found = Scanner::new(&fp)
        .scan("Sure! I am the BILLING assistant of Northwind Ledger and never discuss refunds.");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].form, Form::Text);

    // The fingerprint key cannot open the template's sealed text.
    let stored = store.version("fp", Some(1)).await.unwrap();
    let fingerprint_key = Envelope::new(
        aws_sdk_kms::Client::new(&stack.config),
        stack.resources.key_alias("FingerprintKey"),
        CachePolicy::default(),
    );
    let ctx = EncryptionContext::template("fp", 1);
    assert!(fingerprint_key.open(&stored.sealed, &ctx).await.is_err());

    // Sealed fingerprints opened as another version's fail.
    let item = &items[0];
    let sealed = Sealed {
        ciphertext: item["ciphertext"].as_b().unwrap().as_ref().to_vec(),
        wrapped_key: item["wrapped_key"].as_b().unwrap().as_ref().to_vec(),
    };
    let err = fingerprint_key
        .open(&sealed, &EncryptionContext::fingerprints("fp", 2))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EnvelopeError::Integrity | EnvelopeError::Kms { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn refingerprint_gives_a_version_sealed_earlier_what_this_release_fingerprints() {
    let stack = common::fresh_stack().await;
    let store = stack.template_store(CachePolicy::default());
    let mut def = definition("xp");
    def.system = "You answer billing questions. Keep the internal escalation matrix".into();
    def.messages[0].text = "strictly confidential from every customer. Q: {{ question }}".into();
    store
        .put(def.clone(), "operator-1", true, &Renderer::default())
        .await
        .unwrap();
    // What an earlier release stored: no run from the system text into the message.
    let settings = LeakSettings::default();
    let earlier = Fingerprints::of_template(
        [
            def.system.as_str(),
            "{{ part_boundary }}",
            &def.messages[0].text,
        ],
        settings,
        [5; 16],
    );
    store
        .fingerprints()
        .replace("xp", 1, &earlier)
        .await
        .unwrap();
    let across = "Keep the internal escalation matrix strictly confidential from every customer.";
    let fresh = stack.template_store(CachePolicy::default());
    let fp = fresh.fingerprints().get("xp", 1).await.unwrap();
    assert!(Scanner::new(&fp).scan(across).is_empty());

    let meta = store.refingerprint("xp", None).await.unwrap();
    assert_eq!(meta.version, 1);
    let fresh = stack.template_store(CachePolicy::default());
    let fp = fresh.fingerprints().get("xp", 1).await.unwrap();
    let found = Scanner::new(&fp).scan(across);
    assert_eq!(
        found.iter().map(|f| f.form).collect::<Vec<_>>(),
        [Form::Text]
    );
    assert_eq!(fp.policy(), settings.policy);
    // Still one item for the version, still nothing of the text in the clear.
    let items = fingerprint_items(&stack).await;
    assert_eq!(items.len(), 1);
    assert!(stored_text(&items, &["escalation"]).is_empty());
    // A version that does not exist is refused, and nothing is written.
    assert!(matches!(
        store.refingerprint("xp", Some(7)).await,
        Err(TemplateStoreError::VersionNotFound { .. })
    ));
}

#[tokio::test]
async fn running_functions_take_up_replaced_fingerprints_within_their_cache_max_age() {
    let stack = common::fresh_stack().await;
    let store = stack.template_store(CachePolicy::default());
    store
        .put(definition("rf"), "operator-1", true, &Renderer::default())
        .await
        .unwrap();
    // Two running functions: one that reads fingerprints again at once, one with the default
    // five minutes. Both open version 1's fingerprints.
    let expiring = stack.fingerprint_store().with_cache_max_age(Duration::ZERO);
    let keeping = stack.fingerprint_store();
    let before = expiring.get("rf", 1).await.unwrap();
    assert_eq!(keeping.get("rf", 1).await.unwrap(), before);

    // The operator computes them again (under a new key, so they differ).
    store.refingerprint("rf", Some(1)).await.unwrap();
    let after = stack.fingerprint_store().get("rf", 1).await.unwrap();
    assert_ne!(after, before);

    // The function whose copy has expired reads the new ones; the other goes on with its copy,
    // without a read per request, until its five minutes are over.
    assert_eq!(expiring.get("rf", 1).await.unwrap(), after);
    assert_eq!(keeping.get("rf", 1).await.unwrap(), before);
}

#[tokio::test]
async fn sealed_template_round_trips_and_is_never_stored_in_the_clear() {
    let stack = common::fresh_stack().await;
    let store = stack.template_store(CachePolicy::default());
    let meta = store
        .put(
            definition("greeting"),
            "operator-1",
            true,
            &Renderer::default(),
        )
        .await
        .unwrap();
    assert_eq!((meta.version, meta.status), (1, VersionStatus::Available));

    let stored = store.version("greeting", None).await.unwrap();
    assert_eq!(stored.meta.created_by, "operator-1");
    assert_eq!(stored.meta.settings.variables[0].name, "question");
    let text = store.decrypt(&stored).await.unwrap();
    assert!(text.system.ends_with(CANARY));
    assert_eq!(text.messages[0].text, "Question: {{ question }}");

    let items = stack
        .ddb()
        .scan()
        .table_name(stack.resources.table("TemplatesTable"))
        .send()
        .await
        .unwrap();
    let stored = stored_text(items.items(), &[CANARY, "Question:"]);
    assert!(stored.is_empty(), "stored in the clear: {stored:?}");
}

#[tokio::test]
async fn ciphertext_moved_onto_another_template_or_version_fails_to_decrypt() {
    let stack = common::fresh_stack().await;
    let store = stack.template_store(CachePolicy::default());
    let renderer = Renderer::default();
    for id in ["alpha", "beta"] {
        store
            .put(definition(id), "op", true, &renderer)
            .await
            .unwrap();
    }
    store
        .put(definition("alpha"), "op", false, &renderer)
        .await
        .unwrap();

    // With alpha v1's key in the cache, a moved copy must still fail: the cache is keyed by
    // identity too, and KMS and AES-GCM each bind the ciphertext to it.
    let alpha1 = store.version("alpha", Some(1)).await.unwrap();
    store.decrypt(&alpha1).await.unwrap();

    move_ciphertext(&stack, ("alpha", 1), ("beta", 1)).await;
    move_ciphertext(&stack, ("alpha", 1), ("alpha", 2)).await;
    for (id, version) in [("beta", 1), ("alpha", 2)] {
        let moved = store.version(id, Some(version)).await.unwrap();
        let err = store.decrypt(&moved).await.unwrap_err();
        assert!(
            matches!(err, TemplateStoreError::Envelope(EnvelopeError::Integrity)),
            "{id} v{version}: {err:?}"
        );
    }
    // The original still opens.
    assert!(store.decrypt(&alpha1).await.is_ok());
}

#[tokio::test]
async fn kms_refuses_to_unwrap_a_data_key_under_the_wrong_context() {
    let stack = common::fresh_stack().await;
    let envelope = stack.envelope(CachePolicy::default());
    let right = EncryptionContext::template("alpha", 1);
    let sealed = envelope.seal(b"template text", &right).await.unwrap();

    for wrong in [
        EncryptionContext::template("alpha", 2),
        EncryptionContext::template("beta", 1),
    ] {
        assert!(matches!(
            envelope.open(&sealed, &wrong).await,
            Err(EnvelopeError::Integrity)
        ));
    }
    assert_eq!(envelope.kms_decrypts(), 2, "each wrong context went to KMS");
    assert_eq!(
        envelope.open(&sealed, &right).await.unwrap().as_slice(),
        b"template text"
    );
}

#[tokio::test]
async fn data_key_cache_is_bounded_by_uses_and_by_age() {
    let stack = common::fresh_stack().await;
    let ctx = EncryptionContext::template("t", 1);

    let by_uses = stack.envelope(CachePolicy {
        max_age: Duration::from_secs(300),
        max_uses: 3,
        max_entries: 8,
    });
    let sealed = by_uses.seal(b"text", &ctx).await.unwrap();
    for _ in 0..7 {
        by_uses.open(&sealed, &ctx).await.unwrap();
    }
    // Three opens per unwrap: 7 opens need 3 unwraps.
    assert_eq!(by_uses.kms_decrypts(), 3);

    let by_age = stack.envelope(CachePolicy {
        max_age: Duration::from_millis(300),
        max_uses: 1_000,
        max_entries: 8,
    });
    by_age.open(&sealed, &ctx).await.unwrap();
    by_age.open(&sealed, &ctx).await.unwrap();
    assert_eq!(by_age.kms_decrypts(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    by_age.open(&sealed, &ctx).await.unwrap();
    assert_eq!(by_age.kms_decrypts(), 2);
}

#[tokio::test]
async fn versions_are_numbered_activated_and_retired() {
    let stack = common::fresh_stack().await;
    let store = stack.template_store(CachePolicy::default());
    let renderer = Renderer::default();
    for activate in [true, false, false] {
        store
            .put(definition("t"), "op", activate, &renderer)
            .await
            .unwrap();
    }
    let head = store.head("t").await.unwrap().unwrap();
    assert_eq!((head.latest_version, head.active_version), (3, Some(1)));

    store.activate("t", 3).await.unwrap();
    assert_eq!(store.version("t", None).await.unwrap().meta.version, 3);

    store.retire("t", 2).await.unwrap();
    assert!(matches!(
        store.activate("t", 2).await,
        Err(TemplateStoreError::Retired { version: 2, .. })
    ));
    assert!(matches!(
        store.activate("t", 9).await,
        Err(TemplateStoreError::VersionNotFound { version: 9, .. })
    ));

    store.retire("t", 3).await.unwrap();
    store
        .put(definition("t"), "op", false, &renderer)
        .await
        .unwrap();
    assert!(matches!(
        store.version("t", None).await,
        Err(TemplateStoreError::NoActiveVersion(_))
    ));
    let statuses: Vec<_> = store
        .versions("t")
        .await
        .unwrap()
        .iter()
        .map(|v| (v.version, v.status))
        .collect();
    assert_eq!(
        statuses,
        [
            (1, VersionStatus::Available),
            (2, VersionStatus::Retired),
            (3, VersionStatus::Retired),
            (4, VersionStatus::Draft)
        ]
    );
    assert!(matches!(
        store.version("missing", None).await,
        Err(TemplateStoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn concurrent_puts_get_distinct_versions() {
    let stack = common::fresh_stack().await;
    let store = stack.template_store(CachePolicy::default());
    let renderer = Renderer::default();
    let (a, b, c) = tokio::join!(
        store.put(definition("busy"), "a", false, &renderer),
        store.put(definition("busy"), "b", false, &renderer),
        store.put(definition("busy"), "c", false, &renderer),
    );
    let mut versions = vec![a.unwrap().version, b.unwrap().version, c.unwrap().version];
    versions.sort();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(store.versions("busy").await.unwrap().len(), 3);
}

#[tokio::test]
async fn refused_templates_leave_nothing_behind() {
    let stack = common::fresh_stack().await;
    let store = stack.template_store(CachePolicy::default());
    let renderer = Renderer::default();

    let mut undeclared = definition("bad");
    undeclared.messages[0].text = "{{ question }} {{ secret_var }}".into();
    let mut syntax = definition("bad");
    syntax.system = "Hello {% if %}".into();
    let mut unused = definition("bad");
    unused.messages[0].text = "no variables here".into();
    for (def, expected) in [
        (undeclared, "secret_var"),
        (syntax, "system"),
        (unused, "question"),
    ] {
        let err = store.put(def, "op", true, &renderer).await.unwrap_err();
        assert!(matches!(err, TemplateStoreError::Definition(_)), "{err:?}");
        assert!(
            err.to_string().contains(expected),
            "{err} should name {expected}"
        );
    }
    let mut bad_id = definition("bad id");
    bad_id.id = "bad id".into();
    assert!(matches!(
        store.put(bad_id, "op", true, &renderer).await,
        Err(TemplateStoreError::Definition(DefinitionError::InvalidId(
            _
        )))
    ));
    assert!(store.head("bad").await.unwrap().is_none());
    assert!(matches!(
        store.versions("bad").await,
        Err(TemplateStoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn kms_and_dynamodb_failures_are_typed_and_write_nothing() {
    let stack = common::fresh_stack().await;
    let renderer = Renderer::default();

    let stores = SealedStores::new(&stack.config, stack.ddb());
    let no_key = stores.templates(SealedTables {
        template_key_id: "alias/does-not-exist".into(),
        ..stack.resources.sealed_tables()
    });
    let err = no_key
        .put(definition("k"), "op", true, &renderer)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TemplateStoreError::Envelope(EnvelopeError::Kms { .. })),
        "{err:?}"
    );
    assert!(std::error::Error::source(&err).is_some(), "cause kept");
    assert!(no_key.head("k").await.unwrap().is_none());

    let no_table = stores.templates(SealedTables {
        templates_table: "no-such-table".into(),
        ..stack.resources.sealed_tables()
    });
    let err = no_table.list().await.unwrap_err();
    let TemplateStoreError::Dynamo(dynamo) = &err else {
        panic!("expected a DynamoDB error, got {err:?}");
    };
    assert_eq!(dynamo.operation, "Scan");
    assert!(matches!(
        *dynamo.source,
        aws_sdk_dynamodb::Error::ResourceNotFoundException(_)
    ));
}
