//! The sealed fingerprints of template versions: one item per version in a table of their own,
//! sealed under a KMS key of their own with the encryption context `purpose = fingerprints`. invoke
//! and redact-log may open them; neither this table nor this key gives a way to a template's text.
//!
//! Opened fingerprints are kept in memory (they hold no plaintext) for a few minutes: versions
//! never change, but `template refingerprint` may replace their fingerprints, and running
//! functions then take the new ones up within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, Put};

use crate::envelope::{EncryptionContext, Envelope, EnvelopeError};
use crate::leak::{Fingerprints, LeakSettings, MalformedFingerprints};
use crate::store::dynamo::{self, DynamoError, MalformedItem, n, s};
use crate::template::TemplateText;

/// Opened fingerprints kept in memory; the cache is emptied when it reaches this size.
const CACHE_ENTRIES: usize = 256;
/// How long opened fingerprints are used before they are read again, unless the store is told
/// otherwise: the most a running function goes on with fingerprints that were replaced.
pub const CACHE_MAX_AGE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    #[error("template {id:?} version {version} has no fingerprints")]
    Missing { id: String, version: u32 },
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Malformed(#[from] MalformedItem),
    #[error(transparent)]
    Payload(#[from] MalformedFingerprints),
}

pub struct FingerprintStore {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    envelope: Envelope,
    cache: Mutex<HashMap<(String, u32), Opened>>,
    max_age: Duration,
}

struct Opened {
    fp: Arc<Fingerprints>,
    at: Instant,
}

impl FingerprintStore {
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        envelope: Envelope,
    ) -> Self {
        Self {
            ddb,
            table: table.into(),
            envelope,
            cache: Mutex::new(HashMap::new()),
            max_age: CACHE_MAX_AGE,
        }
    }

    /// Reads fingerprints again once they have been kept for `max_age`.
    pub fn with_cache_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Fingerprints of a template's text under a fresh random key.
    pub fn compute(text: &TemplateText, settings: LeakSettings) -> Fingerprints {
        Fingerprints::of_template(
            text.parts().map(|(_, part)| part),
            settings,
            crate::random_bytes(),
        )
    }

    /// Seals `fp` for one version and returns the write that stores it, to be part of the same
    /// transaction as the version itself.
    pub async fn seal(
        &self,
        template_id: &str,
        version: u32,
        fp: &Fingerprints,
    ) -> Result<Put, FingerprintError> {
        let item = self.sealed_item(template_id, version, fp).await?;
        Ok(Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(template_id)")
            .build()
            .expect("table, item and condition are set"))
    }

    /// Stores `fp` as a version's fingerprints in place of those it has. Function instances that
    /// already opened the old ones go on with them for at most their cache's max age.
    pub async fn replace(
        &self,
        template_id: &str,
        version: u32,
        fp: &Fingerprints,
    ) -> Result<(), FingerprintError> {
        let item = self.sealed_item(template_id, version, fp).await?;
        self.ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| DynamoError::new("PutItem", e))?;
        self.cache
            .lock()
            .expect("cache lock poisoned")
            .remove(&(template_id.to_owned(), version));
        Ok(())
    }

    async fn sealed_item(
        &self,
        template_id: &str,
        version: u32,
        fp: &Fingerprints,
    ) -> Result<HashMap<String, AttributeValue>, FingerprintError> {
        let ctx = EncryptionContext::fingerprints(template_id, version);
        let sealed = self.envelope.seal(&fp.to_bytes(), &ctx).await?;
        let mut item = HashMap::from([
            ("template_id".to_owned(), s(template_id)),
            ("version".to_owned(), n(version)),
        ]);
        item.extend(
            dynamo::sealed_attributes(&sealed)
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value)),
        );
        Ok(item)
    }

    /// The fingerprints of one version.
    pub async fn get(
        &self,
        template_id: &str,
        version: u32,
    ) -> Result<Arc<Fingerprints>, FingerprintError> {
        let key = (template_id.to_owned(), version);
        if let Some(opened) = self.cache.lock().expect("cache lock poisoned").get(&key)
            && opened.at.elapsed() < self.max_age
        {
            return Ok(Arc::clone(&opened.fp));
        }
        let item = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("template_id", s(template_id))
            .key("version", n(version))
            .send()
            .await
            .map_err(|e| DynamoError::new("GetItem", e))?
            .item
            .ok_or_else(|| FingerprintError::Missing {
                id: template_id.to_owned(),
                version,
            })?;
        let sealed = dynamo::sealed(&item)?;
        // Opened under the identity asked for, so fingerprints moved onto another item fail.
        let ctx = EncryptionContext::fingerprints(template_id, version);
        let bytes = self.envelope.open(&sealed, &ctx).await?;
        let fp = Arc::new(Fingerprints::from_bytes(&bytes)?);
        let mut cache = self.cache.lock().expect("cache lock poisoned");
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(
            key,
            Opened {
                fp: Arc::clone(&fp),
                at: Instant::now(),
            },
        );
        Ok(fp)
    }
}
