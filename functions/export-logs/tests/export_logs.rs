//! export-logs against the local AWS emulator: scheduled exports from the watermark, runs that die
//! at each step and are repeated, on-demand windows, and delivery through a tenant's role with
//! SSE-KMS. What a tenant receives is read back as a tenant would: manifests first, then the
//! objects they name, each checked against its SHA-256.

use std::io::Read;
use std::time::{Duration, SystemTime};

use export_logs::export::{
    DEFAULT_OBJECT_BYTES, ExportKind, Exporter, Manifest, ObjectLimits, prepare,
};
use export_logs::handler::{Deps, handle};
use export_logs::state::ExportState;
use promptseal::fixtures::payload_record;
use promptseal::records::{PayloadRecord, SCHEMA_VERSION};
use promptseal::store::records::{PayloadStore, Written};
use promptseal::store::tenants::TenantRegistry;
use promptseal::tenant::{ExportDestination, PayloadLogging, Quotas, TenantSpec};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

struct World {
    deps: Deps,
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl World {
    async fn new() -> Self {
        let (config, resources) = promptseal_devstack::fresh_resources().await;
        let ddb = aws_sdk_dynamodb::Client::new(&config);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        let bucket = promptseal_devstack::unique_name("promptseal-export").to_lowercase();
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let deps = Deps {
            tenants: TenantRegistry::new(ddb.clone(), resources.table("TenantsTable")),
            exporter: Exporter {
                records: PayloadStore::new(ddb.clone(), resources.table("PayloadRecordsTable")),
                state: ExportState::new(ddb, resources.table("ExportStateTable")),
                sdk: config,
                settle: Duration::ZERO,
                limits: ObjectLimits {
                    records: 2,
                    bytes: DEFAULT_OBJECT_BYTES,
                },
                objects_per_run: 100,
            },
        };
        Self { deps, s3, bucket }
    }

    fn destination(&self, tenant: &str) -> ExportDestination {
        ExportDestination {
            bucket: self.bucket.clone(),
            prefix: format!("exports/{tenant}/"),
            account_id: promptseal_devstack::ACCOUNT_ID.into(),
            kms_key_id: None,
            role_arn: None,
            external_id: None,
        }
    }

    async fn tenant(&self, id: &str, opted_in: bool, export: Option<ExportDestination>) {
        self.deps
            .tenants
            .put(&TenantSpec {
                tenant_id: id.into(),
                templates: Default::default(),
                payload_logging: PayloadLogging {
                    enabled: opted_in,
                    retention_days: 7,
                },
                quotas: Quotas::default(),
                export,
                preview: false,
                context: None,
            })
            .await
            .unwrap();
    }

    async fn store(&self, tenant: &str, ids: &[&str]) {
        for id in ids {
            self.deps
                .exporter
                .records
                .put(&payload_record(tenant, id), 7)
                .await
                .unwrap();
        }
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        self.s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
            .to_vec()
    }

    /// Every record a tenant received under `prefix`, read through the manifests.
    async fn delivered(&self, prefix: &str) -> Vec<PayloadRecord> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        let mut records = Vec::new();
        for object in listed.contents() {
            let key = object.key().unwrap();
            if !key.ends_with("manifest.json") {
                continue;
            }
            let manifest: Manifest = serde_json::from_slice(&self.get(key).await).unwrap();
            let mut count = 0;
            for part in &manifest.objects {
                let bytes = self.get(&part.key).await;
                assert_eq!(hex_sha256(&bytes), part.sha256, "{}", part.key);
                assert_eq!(bytes.len(), part.bytes);
                let mut text = String::new();
                flate2::read::GzDecoder::new(bytes.as_slice())
                    .read_to_string(&mut text)
                    .unwrap();
                for line in text.lines() {
                    records.push(serde_json::from_str::<PayloadRecord>(line).unwrap());
                    count += 1;
                }
            }
            assert_eq!(count, manifest.record_count);
        }
        records
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ids(records: &[PayloadRecord]) -> Vec<String> {
    let mut ids: Vec<_> = records.iter().map(|r| r.model_request_id.clone()).collect();
    ids.sort();
    ids
}

/// The sample event SAM and cargo-lambda use for the schedule.
fn scheduled() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/export-logs/scheduled.json"
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn scheduled_exports_deliver_each_opted_in_tenants_new_records_once() {
    let world = World::new().await;
    world
        .tenant("acme", true, Some(world.destination("acme")))
        .await;
    world.tenant("globex", true, None).await; // opted in, nowhere to deliver
    world
        .tenant("initech", false, Some(world.destination("initech")))
        .await;
    world.store("acme", &["a1", "a2", "a3"]).await;
    world.store("globex", &["g1"]).await;

    let summary = handle(&world.deps, scheduled()).await.unwrap();
    assert_eq!(summary.exports.len(), 1);
    assert_eq!(summary.exports[0].tenant_id, "acme");
    assert_eq!(
        (summary.exports[0].records, summary.exports[0].objects),
        (3, 2)
    );
    let delivered = world.delivered("exports/acme/").await;
    assert_eq!(ids(&delivered), ["a1", "a2", "a3"]);
    assert!(delivered.iter().all(|r| r.schema_version == SCHEMA_VERSION));
    assert!(world.delivered("exports/initech/").await.is_empty());

    // Nothing new: nothing written. Two new records: a second export with just them.
    let summary = handle(&world.deps, scheduled()).await.unwrap();
    assert!(
        summary
            .exports
            .iter()
            .all(|d| d.records == 0 && d.manifest_key.is_none())
    );
    world.store("acme", &["a4", "a5"]).await;
    let summary = handle(&world.deps, scheduled()).await.unwrap();
    assert_eq!(summary.exports[0].records, 2);
    assert_eq!(
        ids(&world.delivered("exports/acme/").await),
        ["a1", "a2", "a3", "a4", "a5"]
    );
}

/// A record whose time is taken before a window closes but whose write commits after (SDK
/// retries, a slow network, a skewed clock) is delivered once, by the next run; stamped with
/// that old time, it would have fallen into a window already read and been skipped forever.
#[tokio::test]
async fn a_record_committed_after_its_window_closed_is_delivered_once_by_the_next_run() {
    let world = World::new().await;
    world
        .tenant("acme", true, Some(world.destination("acme")))
        .await;
    world.store("acme", &["a1"]).await;
    let stamped = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let first = handle(&world.deps, scheduled()).await.unwrap();
    assert_eq!(first.exports[0].records, 1);
    // Only now does the late write commit.
    let written = world
        .deps
        .exporter
        .records
        .put_stamped(&payload_record("acme", "late"), 7, stamped)
        .await
        .unwrap();
    assert_eq!(written, Written::Stored);
    let second = handle(&world.deps, scheduled()).await.unwrap();
    assert_eq!(second.exports[0].records, 1);
    let third = handle(&world.deps, scheduled()).await.unwrap();
    assert!(third.exports.iter().all(|d| d.records == 0));
    assert_eq!(ids(&world.delivered("exports/acme/").await), ["a1", "late"]);
    // Written again (a retried write), it is still one record.
    let again = world
        .deps
        .exporter
        .records
        .put_stamped(&payload_record("acme", "late"), 7, stamped)
        .await
        .unwrap();
    assert_eq!(again, Written::AlreadyStored);
}

/// A backlog bigger than one run's budget is delivered over several runs, each going on from the
/// last object the one before saved, exactly once; another tenant's export completes in the
/// first run all the same.
#[tokio::test]
async fn a_backlog_bigger_than_a_run_completes_over_several_runs_while_others_complete() {
    let mut world = World::new().await;
    world.deps.exporter.objects_per_run = 2;
    for id in ["acme", "globex"] {
        world.tenant(id, true, Some(world.destination(id))).await;
    }
    let backlog: Vec<String> = (0..11).map(|n| format!("a{n:02}")).collect();
    world
        .store(
            "acme",
            &backlog.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await;
    world.store("globex", &["g1"]).await;

    let mut runs = Vec::new();
    loop {
        let summary = handle(&world.deps, scheduled()).await.unwrap();
        let acme = summary
            .exports
            .iter()
            .find(|d| d.tenant_id == "acme")
            .cloned();
        if runs.is_empty() {
            let globex = summary.exports.iter().find(|d| d.tenant_id == "globex");
            assert!(
                globex.is_some_and(|d| d.finished && d.records == 1),
                "{summary:?}"
            );
        }
        let Some(acme) = acme else { break };
        runs.push((acme.objects, acme.finished));
        if acme.finished {
            break;
        }
        assert!(runs.len() < 10, "{runs:?}");
    }
    // Two objects per run, saved as they go; the third run writes the last two and the manifest.
    assert_eq!(runs, [(2, false), (4, false), (6, true)]);
    let delivered = world.delivered("exports/acme/").await;
    assert_eq!(ids(&delivered), backlog);
    assert_eq!(ids(&world.delivered("exports/globex/").await), ["g1"]);
    // Nothing is written twice, and a later run has nothing more.
    let listed = world
        .s3
        .list_objects_v2()
        .bucket(&world.bucket)
        .prefix("exports/acme/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 7, "six objects and a manifest");
    let after = handle(&world.deps, scheduled()).await.unwrap();
    assert!(after.exports.iter().all(|d| d.records == 0));
}

/// How far a run gets before it dies.
#[derive(Debug, Clone, Copy)]
enum DiesAfter {
    FixingTheWindow,
    TheFirstObject,
    TheManifest,
}

#[tokio::test]
async fn a_run_that_dies_at_any_step_is_repeated_without_loss_or_duplicates() {
    let world = World::new().await;
    for (i, dies) in [
        DiesAfter::FixingTheWindow,
        DiesAfter::TheFirstObject,
        DiesAfter::TheManifest,
    ]
    .into_iter()
    .enumerate()
    {
        let tenant = format!("tenant-{i}");
        let dest = world.destination(&tenant);
        world.tenant(&tenant, true, Some(dest.clone())).await;
        let first: Vec<String> = (0..5).map(|n| format!("{tenant}-r{n}")).collect();
        world
            .store(
                &tenant,
                &first.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .await;

        // The dying run: it fixes its window, then writes what `export` would write for it,
        // up to the step it dies after.
        let exporter = &world.deps.exporter;
        let (window, _) = exporter.plan(&tenant).await.unwrap().unwrap();
        let records = exporter
            .records
            .stored_between(&tenant, &window.from, &window.until)
            .all()
            .await
            .unwrap();
        let prepared = prepare(&dest, &tenant, ExportKind::Scheduled, &window, records, 2);
        assert_eq!(prepared.objects.len(), 3);
        let s3 = exporter.s3_for(&dest).await;
        let written = match dies {
            DiesAfter::FixingTheWindow => 0,
            DiesAfter::TheFirstObject => 1,
            DiesAfter::TheManifest => prepared.objects.len(),
        };
        for object in prepared.objects.into_iter().take(written) {
            exporter.put_object(&s3, &dest, object).await.unwrap();
        }
        if let DiesAfter::TheManifest = dies {
            let manifest = serde_json::to_vec(&prepared.manifest).unwrap();
            exporter
                .put(
                    &s3,
                    &dest,
                    &prepared.manifest_key,
                    manifest,
                    "application/json",
                )
                .await
                .unwrap();
        }
        // A record arrives while the run is dead.
        let late = format!("{tenant}-late");
        world.store(&tenant, &[&late]).await;

        // The retried run finishes the window; the next one takes the late record.
        handle(&world.deps, scheduled()).await.unwrap();
        handle(&world.deps, scheduled()).await.unwrap();
        let mut expected = first.clone();
        expected.push(late);
        expected.sort();
        let got = ids(&world.delivered(&dest.prefix).await);
        assert_eq!(got, expected, "died after {dies:?}");
    }
}

#[tokio::test]
async fn an_on_demand_export_writes_the_window_asked_for_and_keeps_the_watermark() {
    let world = World::new().await;
    world
        .tenant("acme", true, Some(world.destination("acme")))
        .await;
    world
        .tenant("initech", false, Some(world.destination("initech")))
        .await;
    world.store("acme", &["a1", "a2"]).await;
    let request = |tenant: &str, from: &str, until: &str| -> Value {
        json!({
            "detail-type": "ExportRequested",
            "source": "promptseal.admin",
            "detail": { "tenant_id": tenant, "from": from, "until": until },
        })
    };
    // The sample event asks for November 2026 up to the 22nd: nothing stored now is in it.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/export-logs/export-requested.json"
    );
    let sample: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(
        handle(&world.deps, sample).await.unwrap().exports[0].records,
        0
    );
    let summary = handle(
        &world.deps,
        request("acme", "2020-01-01T00:00:00Z", "2100-01-01T00:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(summary.exports[0].records, 2);
    let key = summary.exports[0].manifest_key.clone().unwrap();
    assert_eq!(
        key,
        "exports/acme/acme/on-demand/20200101T000000.000000Z_21000101T000000.000000Z/manifest.json"
    );
    assert_eq!(ids(&world.delivered("exports/acme/").await), ["a1", "a2"]);
    let state = world.deps.exporter.state.get("acme").await.unwrap();
    assert_eq!(
        state.watermark, None,
        "the schedule still delivers everything"
    );

    for (event, code) in [
        (
            request("acme", "yesterday", "2100-01-01T00:00:00Z"),
            "malformed_request",
        ),
        (
            request("acme", "2100-01-01T00:00:00Z", "2020-01-01T00:00:00Z"),
            "empty_window",
        ),
        (
            request("nobody", "2020-01-01T00:00:00Z", "2100-01-01T00:00:00Z"),
            "unknown_tenant",
        ),
        (
            request("initech", "2020-01-01T00:00:00Z", "2100-01-01T00:00:00Z"),
            "not_exporting",
        ),
        (
            json!({"detail-type": "Something", "detail": {}}),
            "unknown_event",
        ),
        (json!("not an event at all"), "unknown_event"),
    ] {
        // Refused for good: acknowledged (not retried), with its code.
        let summary = handle(&world.deps, event).await.unwrap();
        assert_eq!(summary.refused, Some(code));
        assert!(summary.exports.is_empty());
    }
}

/// The tenant's account, as the emulator knows it: a session there, and a bucket and a role made
/// with it.
struct TenantAccount {
    config: aws_config::SdkConfig,
}

const TENANT_ACCOUNT: &str = "210987654321";

impl TenantAccount {
    async fn new() -> Self {
        let ours = promptseal_devstack::emulator_config(&promptseal_devstack::endpoint_from_env(
            "AWS_ENDPOINT_URL",
        ))
        .await;
        let creds = aws_sdk_sts::Client::new(&ours)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{TENANT_ACCOUNT}:role/tenant-admin"))
            .role_session_name("tenant-admin")
            .send()
            .await
            .unwrap()
            .credentials
            .unwrap();
        let config = ours
            .into_builder()
            .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                aws_sdk_sts::config::Credentials::new(
                    creds.access_key_id,
                    creds.secret_access_key,
                    Some(creds.session_token),
                    None,
                    "tenant-admin",
                ),
            ))
            .build();
        Self { config }
    }

    async fn bucket(&self) -> String {
        let name = promptseal_devstack::unique_name("tenant-exports").to_lowercase();
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.config)
                .force_path_style(true)
                .build(),
        )
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap();
        name
    }

    /// A role the stack's account may assume only with `external_id`.
    async fn export_role(&self, name: &str, external_id: &str) -> String {
        let trust = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{}:root", promptseal_devstack::ACCOUNT_ID) },
                "Action": "sts:AssumeRole",
                "Condition": { "StringEquals": { "sts:ExternalId": external_id } },
            }],
        });
        aws_sdk_iam::Client::new(&self.config)
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .unwrap()
            .role
            .unwrap()
            .arn
    }
}

/// Delivery through a role in the tenant's account: assumed with the tenant's own external id
/// and written with the tenant's account as the bucket's expected owner, encrypted with the
/// tenant's key. Another tenant registered with the same role, or with the bucket under the
/// wrong owner, gets nothing written anywhere, and does not hold up the others.
#[tokio::test]
async fn delivery_through_a_tenant_role_needs_its_external_id_and_the_buckets_owner() {
    let world = World::new().await;
    let tenant = TenantAccount::new().await;
    let bucket = tenant.bucket().await;
    let key = aws_sdk_kms::Client::new(&tenant.config)
        .create_key()
        .description("acme's export key")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .arn
        .unwrap();
    let role_name = promptseal_devstack::unique_name("promptseal-export-acme");
    let destination = |prefix: &str, role: Option<&str>, account: &str| ExportDestination {
        bucket: bucket.clone(),
        prefix: prefix.into(),
        account_id: account.into(),
        kms_key_id: Some(key.clone()),
        role_arn: role.map(str::to_owned),
        external_id: None,
    };
    let role_arn = format!("arn:aws:iam::{TENANT_ACCOUNT}:role/{role_name}");
    world
        .tenant(
            "acme",
            true,
            Some(destination("acme/", Some(&role_arn), TENANT_ACCOUNT)),
        )
        .await;
    let registered = world.deps.tenants.get("acme").await.unwrap().unwrap();
    let external_id = registered.spec.export.unwrap().external_id.unwrap();
    assert_eq!(tenant.export_role(&role_name, &external_id).await, role_arn);
    // mallory names acme's role (its own external id differs); mixup names acme's bucket as if
    // it were in the stack's own account.
    world
        .tenant(
            "mallory",
            true,
            Some(destination("mallory/", Some(&role_arn), TENANT_ACCOUNT)),
        )
        .await;
    world
        .tenant(
            "mixup",
            true,
            Some(destination("mixup/", None, promptseal_devstack::ACCOUNT_ID)),
        )
        .await;
    for id in ["acme", "mallory", "mixup"] {
        world.store(id, &[&format!("{id}-1")]).await;
    }

    let err = handle(&world.deps, scheduled()).await.unwrap_err();
    assert_eq!(err.code(), "export_failed");
    let tenant_s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&tenant.config)
            .force_path_style(true)
            .build(),
    );
    let keys: Vec<String> = tenant_s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| k.starts_with("acme/")), "{keys:?}");
    let part = keys
        .iter()
        .find(|k| k.ends_with("part-00000.jsonl.gz"))
        .unwrap();
    let head = tenant_s3
        .head_object()
        .bucket(&bucket)
        .key(part)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption().map(|s| s.as_str()),
        Some("aws:kms")
    );
    assert_eq!(head.ssekms_key_id(), Some(key.as_str()));

    // Each refusal is the one AWS makes: the role refuses mallory's external id, and S3 refuses
    // a write whose expected owner is not the bucket's.
    for (id, refusal) in [
        ("mallory", "not authorized to perform sts:AssumeRole"),
        ("mixup", "AccessDenied"),
    ] {
        let mut dest = world
            .deps
            .tenants
            .get(id)
            .await
            .unwrap()
            .unwrap()
            .spec
            .export
            .unwrap();
        dest.kms_key_id = None;
        let s3 = world.deps.exporter.s3_for(&dest).await;
        let err = world
            .deps
            .exporter
            .put(
                &s3,
                &dest,
                &format!("{id}/probe"),
                b"x".to_vec(),
                "text/plain",
            )
            .await
            .unwrap_err();
        let chain = format!("{err:?}");
        assert!(chain.contains(refusal), "{id}: {chain}");
    }
}
