//! The stores that hold sealed ISV text, wired in one place: the template store writes through the
//! fingerprint store, and each seals under its own KMS key (envelope encryption) with one data-key
//! cache policy. Functions, the admin CLI, test harnesses and benchmarks all build them here.

use aws_types::SdkConfig;

use crate::envelope::{CachePolicy, Envelope};
use crate::store::fingerprints::FingerprintStore;
use crate::store::templates::TemplateStore;

/// Where the sealed stores live: their tables, and the KMS keys they seal under.
#[derive(Debug, Clone)]
pub struct SealedTables {
    pub templates_table: String,
    pub template_key_id: String,
    pub fingerprints_table: String,
    pub fingerprint_key_id: String,
}

/// Builds the sealed stores from an SDK config.
pub struct SealedStores {
    ddb: aws_sdk_dynamodb::Client,
    kms: aws_sdk_kms::Client,
    cache: CachePolicy,
}

impl SealedStores {
    /// Stores that go through `ddb` (a function that writes records passes its writer client)
    /// and the KMS client of `sdk`, with the default data-key cache.
    pub fn new(sdk: &SdkConfig, ddb: aws_sdk_dynamodb::Client) -> Self {
        Self {
            ddb,
            kms: aws_sdk_kms::Client::new(sdk),
            cache: CachePolicy::default(),
        }
    }

    /// How long and how often a decrypted data key is reused.
    pub fn with_cache(mut self, cache: CachePolicy) -> Self {
        self.cache = cache;
        self
    }

    /// The fingerprint store alone (what redact-log reads).
    pub fn fingerprints(
        &self,
        table: impl Into<String>,
        key_id: impl Into<String>,
    ) -> FingerprintStore {
        FingerprintStore::new(
            self.ddb.clone(),
            table,
            Envelope::new(self.kms.clone(), key_id, self.cache),
        )
    }

    /// The template store and the fingerprint store it writes through.
    pub fn templates(&self, tables: SealedTables) -> TemplateStore {
        TemplateStore::new(
            self.ddb.clone(),
            tables.templates_table,
            Envelope::new(self.kms.clone(), tables.template_key_id, self.cache),
            self.fingerprints(tables.fingerprints_table, tables.fingerprint_key_id),
        )
    }
}
