//! The sealed fingerprints of template versions: one item per version in a table of their own,
//! sealed under a KMS key of their own with the encryption context `purpose = fingerprints`. invoke
//! and redact-log may open them; neither this table nor this key gives a way to a template's text.
//!
//! Versions never change, so opened fingerprints are kept in memory (they hold no plaintext).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::{AttributeValue, Put};

use crate::dynamo::{self, DynamoError, MalformedItem, n, s};
use crate::envelope::{EncryptionContext, Envelope, EnvelopeError};
use crate::leak::{Fingerprints, LeakGuard, MalformedFingerprints};
use crate::template::TemplateText;

/// Opened fingerprints kept in memory; the cache is emptied when it reaches this size.
const CACHE_ENTRIES: usize = 256;

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
    cache: Mutex<HashMap<(String, u32), Arc<Fingerprints>>>,
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
        }
    }

    /// Fingerprints of a template's text under a fresh random key.
    pub fn compute(text: &TemplateText, guard: LeakGuard) -> Fingerprints {
        Fingerprints::of_template(
            text.parts().map(|(_, part)| part),
            guard,
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
    /// already opened the old ones keep them until they start again.
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
        if let Some(fp) = self.cache.lock().expect("cache lock poisoned").get(&key) {
            return Ok(Arc::clone(fp));
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
        cache.insert(key, Arc::clone(&fp));
        Ok(fp)
    }
}
