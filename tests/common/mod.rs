//! What every integration test needs: the local stack's endpoints from the environment, and a
//! fresh set of template.yaml's resources (tables, key) named for a stack unique to the test.

#![allow(dead_code)] // each test target uses its own subset of these helpers

use aws_config::SdkConfig;
use promptseal::envelope::{CachePolicy, Envelope};
use promptseal::store::fingerprints::FingerprintStore;
use promptseal::store::records::PayloadStore;
use promptseal::store::sealed::SealedStores;
use promptseal::store::templates::TemplateStore;
use promptseal::store::tenants::TenantRegistry;
use promptseal::store::usage::UsageLedger;
use promptseal_devstack::Resources;

pub struct Stack {
    pub config: SdkConfig,
    pub resources: Resources,
}

/// The workspace root.
pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A function binary built beside this test (`target/<profile>/<name>`).
pub fn binary_path(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test --workspace` builds it (or `cargo build --bins`)",
        path.display()
    );
    path
}

pub fn bedrock_endpoint() -> String {
    promptseal_devstack::endpoint_from_env("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
}

/// Fresh tables and key, named for a new stack.
pub async fn fresh_stack() -> Stack {
    let (config, resources) = promptseal_devstack::fresh_resources().await;
    Stack { config, resources }
}

impl Stack {
    pub fn ddb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.config)
    }

    pub fn envelope(&self, policy: CachePolicy) -> Envelope {
        Envelope::new(
            aws_sdk_kms::Client::new(&self.config),
            self.resources.key_alias("TemplateKey"),
            policy,
        )
    }

    pub fn fingerprint_store(&self) -> FingerprintStore {
        let tables = self.resources.sealed_tables();
        SealedStores::new(&self.config, self.ddb())
            .fingerprints(tables.fingerprints_table, tables.fingerprint_key_id)
    }

    pub fn template_store(&self, policy: CachePolicy) -> TemplateStore {
        SealedStores::new(&self.config, self.ddb())
            .with_cache(policy)
            .templates(self.resources.sealed_tables())
    }

    pub fn tenants(&self) -> TenantRegistry {
        TenantRegistry::new(self.ddb(), self.resources.table("TenantsTable"))
    }

    pub fn payload_records(&self) -> PayloadStore {
        PayloadStore::new(self.ddb(), self.resources.table("PayloadRecordsTable"))
    }

    pub fn usage(&self) -> UsageLedger {
        UsageLedger::new(self.ddb(), self.resources.table("UsageTable"))
    }
}
