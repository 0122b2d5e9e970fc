//! The tenant registry and the usage ledger against the local AWS emulator.

mod common;

use promptseal::records::TokenUsage;
use promptseal::tenant::{
    ExportDestination, PayloadLogging, Quotas, TenantError, TenantSpec, TenantStatus,
};

fn spec(id: &str) -> TenantSpec {
    TenantSpec {
        tenant_id: id.into(),
        templates: ["support-reply".to_owned(), "summary".to_owned()].into(),
        payload_logging: PayloadLogging {
            enabled: true,
            retention_days: 14,
        },
        quotas: Quotas {
            daily_tokens: Some(100_000),
            daily_requests: None,
        },
        export: None,
        preview: false,
        context: None,
    }
}

#[tokio::test]
async fn tenants_are_registered_listed_and_suspended() {
    let stack = common::fresh_stack().await;
    let registry = stack.tenants();

    let acme = registry.put(&spec("acme")).await.unwrap();
    assert_eq!(acme.status, TenantStatus::Active);
    assert_eq!(acme.spec, spec("acme"));
    assert!(acme.may_use("summary") && !acme.may_use("other"));
    registry.put(&spec("globex")).await.unwrap();

    let ids: Vec<_> = registry
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.spec.tenant_id)
        .collect();
    assert_eq!(ids, ["acme", "globex"]);

    let suspended = registry
        .set_status("acme", TenantStatus::Suspended)
        .await
        .unwrap();
    assert_eq!(suspended.status, TenantStatus::Suspended);

    // Replacing the settings keeps the status and the creation time; quotas can be lifted.
    let mut changed = spec("acme");
    changed.templates = ["summary".to_owned()].into();
    changed.quotas.daily_tokens = None;
    changed.payload_logging.enabled = false;
    let replaced = registry.put(&changed).await.unwrap();
    assert_eq!(replaced.status, TenantStatus::Suspended);
    assert_eq!(replaced.created_at, acme.created_at);
    assert_eq!(replaced.spec, changed);
    assert_eq!(registry.get("acme").await.unwrap().unwrap(), replaced);

    // An export destination is kept whole, and removed when the settings no longer name one.
    let mut exporting = changed.clone();
    exporting.export = Some(ExportDestination {
        bucket: "acme-payload-logs".into(),
        prefix: "promptseal/".into(),
        account_id: "123456789012".into(),
        kms_key_id: Some("arn:aws:kms:us-east-1:123456789012:key/abc".into()),
        role_arn: Some("arn:aws:iam::123456789012:role/promptseal-export".into()),
        external_id: None,
    });
    // The registry gives the tenant an external id of its own, kept when the destination
    // changes or is removed (the role's trust policy names it).
    let stored = registry.put(&exporting).await.unwrap().spec;
    let external_id = stored.export.as_ref().unwrap().external_id.clone().unwrap();
    assert!(external_id.starts_with("promptseal-") && external_id.len() > 30);
    let mut expected = exporting.clone();
    expected.export.as_mut().unwrap().external_id = Some(external_id.clone());
    assert_eq!(stored, expected);
    exporting.export.as_mut().unwrap().prefix = "other/".into();
    exporting.export.as_mut().unwrap().external_id = Some("chosen-by-the-caller".into());
    let kept = registry.put(&exporting).await.unwrap().spec.export.unwrap();
    assert_eq!(kept.external_id, Some(external_id.clone()));
    assert_eq!(registry.put(&changed).await.unwrap().spec.export, None);
    let again = registry.put(&exporting).await.unwrap().spec.export.unwrap();
    assert_eq!(again.external_id, Some(external_id));
    assert_eq!(registry.put(&changed).await.unwrap().spec.export, None);

    let resumed = registry
        .set_status("acme", TenantStatus::Active)
        .await
        .unwrap();
    assert_eq!(resumed.status, TenantStatus::Active);
}

#[tokio::test]
async fn unknown_and_invalid_tenants_are_refused() {
    let stack = common::fresh_stack().await;
    let registry = stack.tenants();
    assert!(registry.get("nobody").await.unwrap().is_none());
    assert!(matches!(
        registry.set_status("nobody", TenantStatus::Suspended).await,
        Err(TenantError::NotFound(_))
    ));
    assert!(
        registry.get("nobody").await.unwrap().is_none(),
        "suspend created nothing"
    );
    assert!(matches!(
        registry.put(&spec("not/valid")).await,
        Err(TenantError::InvalidId(_))
    ));
    assert!(registry.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_usage_updates_are_all_counted() {
    let stack = common::fresh_stack().await;
    let ledger = stack.usage();
    let model = "anthropic.claude-3-haiku-20240307-v1:0";
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..24u64 {
        let ledger = ledger.clone();
        calls.spawn(async move {
            ledger
                .record("acme", "2026-11-21", model, &tokens(100 + i, 10, 0))
                .await
        });
    }
    for result in calls.join_all().await {
        result.unwrap();
    }
    ledger
        .record("acme", "2026-11-22", model, &tokens(5, 6, 40))
        .await
        .unwrap();
    ledger
        .record("acme", "2026-11-22", "other-model", &tokens(1, 2, 0))
        .await
        .unwrap();
    ledger
        .record("globex", "2026-11-22", model, &tokens(7, 7, 0))
        .await
        .unwrap();

    let rows = ledger.query("acme", None).await.unwrap();
    let summary: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.day.as_str(),
                r.model_id.as_str(),
                r.requests,
                r.input_tokens,
                r.cache_read_input_tokens,
                r.output_tokens,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "2026-11-21",
                model,
                24,
                24 * 100 + (0..24).sum::<u64>(),
                0,
                240
            ),
            ("2026-11-22", model, 1, 5, 40, 6),
            ("2026-11-22", "other-model", 1, 1, 0, 2),
        ]
    );
    let recent = ledger.query("acme", Some("2026-11-22")).await.unwrap();
    assert_eq!(recent.len(), 2);
    assert!(ledger.query("initech", None).await.unwrap().is_empty());
}

/// Many instances reserving at once at the limit: exactly the limit's requests get through; the
/// token limit stops reservations once recorded tokens reach it; a released request is given back.
#[tokio::test]
async fn daily_request_reservations_are_exact_under_concurrency() {
    let stack = common::fresh_stack().await;
    let ledger = stack.usage();
    let day = "2026-11-23";
    let quotas = Quotas {
        daily_tokens: None,
        daily_requests: Some(5),
    };
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let ledger = ledger.clone();
        calls.spawn(async move { ledger.reserve("acme", day, quotas).await });
    }
    let granted = calls
        .join_all()
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(granted, 5);
    assert!(!ledger.reserve("acme", day, quotas).await.unwrap());
    ledger.release("acme", day).await.unwrap();
    assert!(ledger.reserve("acme", day, quotas).await.unwrap());
    assert!(!ledger.reserve("acme", day, quotas).await.unwrap());
    // Another tenant, another day: their own counts.
    assert!(ledger.reserve("globex", day, quotas).await.unwrap());
    assert!(ledger.reserve("acme", "2026-11-24", quotas).await.unwrap());

    // Tokens: recorded after each call; once they reach the limit, no request is reserved.
    let used = tokens;
    let tokens = Quotas {
        daily_tokens: Some(100),
        daily_requests: None,
    };
    let model = "m";
    assert!(ledger.reserve("initech", day, tokens).await.unwrap());
    ledger
        .record("initech", day, model, &used(60, 30, 0))
        .await
        .unwrap();
    assert!(ledger.reserve("initech", day, tokens).await.unwrap());
    // Tokens read from the prompt cache count too: the model read them.
    ledger
        .record("initech", day, model, &used(10, 0, 5))
        .await
        .unwrap();
    assert!(!ledger.reserve("initech", day, tokens).await.unwrap());
    // The quota item is not a ledger row.
    let rows = ledger.query("initech", None).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].requests, rows[0].input_tokens), (2, 70));
}

/// Tokens of one model call: full-price input, output, and input read from the prompt cache.
fn tokens(input: u64, output: u64, cache_read: u64) -> TokenUsage {
    TokenUsage {
        input_tokens: input,
        output_tokens: output,
        cache_read_input_tokens: cache_read,
        cache_write_input_tokens: 0,
    }
}
