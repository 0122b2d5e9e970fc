//! What every integration test needs: the local stack's endpoints from the environment, and a
//! fresh set of template.yaml's resources (tables, key) named for a stack unique to the test.

#![allow(dead_code)] // each test target uses its own subset of these helpers

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::SdkConfig;
use promptseal::envelope::{CachePolicy, Envelope};
use promptseal::templates::TemplateStore;
use promptseal::tenants::TenantRegistry;
use promptseal::usage::UsageLedger;
use promptseal_devstack::Resources;

pub struct Stack {
    pub config: SdkConfig,
    pub resources: Resources,
}

fn endpoint(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: integration tests run against the local stack. \
             Use `cargo xtask test`, or `cargo xtask up` and `source .local/stack.env` first."
        )
    })
}

pub fn bedrock_endpoint() -> String {
    endpoint("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
}

/// A name no other test (in this or another process) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fresh tables and key, named for a new stack.
pub async fn fresh_stack() -> Stack {
    let config = promptseal_devstack::emulator_config(&endpoint("AWS_ENDPOINT_URL")).await;
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let resources = promptseal_devstack::provision(&config, &template, &unique("t"))
        .await
        .expect("provisioning template.yaml's resources in the emulator");
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

    pub fn template_store(&self, policy: CachePolicy) -> TemplateStore {
        TemplateStore::new(
            self.ddb(),
            self.resources.table("TemplatesTable"),
            self.envelope(policy),
        )
    }

    pub fn tenants(&self) -> TenantRegistry {
        TenantRegistry::new(self.ddb(), self.resources.table("TenantsTable"))
    }

    pub fn usage(&self) -> UsageLedger {
        UsageLedger::new(self.ddb(), self.resources.table("UsageTable"))
    }
}
