//! The sealed template store in DynamoDB. One item per version (immutable text, sealed under its
//! own data key, settings in the clear) and one head item per template (latest and active version).
//! Every write is one conditional transaction, so no partial or duplicate version is left behind.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::envelope::{EncryptionContext, Envelope, EnvelopeError, Sealed};
use crate::render::Renderer;
use crate::store::dynamo::{self, DynamoError, Item, MalformedItem, n, s};
use crate::store::fingerprints::{FingerprintError, FingerprintStore};
use crate::syntax::plain_substitutions;
use crate::template::{
    CacheLayout, DefinitionError, TemplateDefinition, TemplateSettings, TemplateText, VersionMeta,
    VersionStatus, check_settings,
};

const HEAD: &str = "HEAD";
const PUT_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum TemplateStoreError {
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error("template {0:?} not found")]
    NotFound(String),
    #[error("template {id:?} has no version {version}")]
    VersionNotFound { id: String, version: u32 },
    #[error("template {0:?} has no active version")]
    NoActiveVersion(String),
    #[error("template {id:?} version {version} is retired")]
    Retired { id: String, version: u32 },
    #[error("template {0:?} was changed by someone else at the same time; try again")]
    Conflict(String),
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Fingerprints(#[from] FingerprintError),
    #[error(transparent)]
    Malformed(#[from] MalformedItem),
    #[error("sealed template text does not parse")]
    Payload(#[source] serde_json::Error),
}

/// A template's head: which versions exist and which one is active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateSummary {
    pub template_id: String,
    pub latest_version: u32,
    pub active_version: Option<u32>,
    pub updated_at: String,
}

/// A version as stored: its clear metadata and its sealed text.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub meta: VersionMeta,
    pub sealed: Sealed,
}

pub struct TemplateStore {
    catalog: TemplateCatalog,
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    envelope: Envelope,
    fingerprints: FingerprintStore,
}

/// The template table read without any key: heads, versions and their clear settings, each
/// version's text still sealed. What retrieve-context reads to learn which collections a version
/// may retrieve from.
#[derive(Clone)]
pub struct TemplateCatalog {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
}

impl TemplateCatalog {
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            ddb,
            table: table.into(),
        }
    }

    /// The head of a template, if it exists.
    pub async fn head(&self, id: &str) -> Result<Option<TemplateSummary>, TemplateStoreError> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("template_id", s(id))
            .key("sk", s(HEAD))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::new("GetItem", e))?;
        out.item
            .map(|item| summary(&item))
            .transpose()
            .map_err(Into::into)
    }

    /// Every template's head.
    pub async fn list(&self) -> Result<Vec<TemplateSummary>, TemplateStoreError> {
        let items = dynamo::scan_all(
            self.ddb
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :head")
                .expression_attribute_values(":head", s(HEAD)),
        )
        .await?;
        let mut heads = items.iter().map(summary).collect::<Result<Vec<_>, _>>()?;
        heads.sort_by(|a, b| a.template_id.cmp(&b.template_id));
        Ok(heads)
    }

    /// Every version of a template, oldest first.
    pub async fn versions(&self, id: &str) -> Result<Vec<VersionMeta>, TemplateStoreError> {
        let items = dynamo::query_all(
            self.ddb
                .query()
                .table_name(&self.table)
                .key_condition_expression("template_id = :id AND begins_with(sk, :v)")
                .expression_attribute_values(":id", s(id))
                .expression_attribute_values(":v", s("V#")),
        )
        .await?;
        if items.is_empty() {
            return Err(TemplateStoreError::NotFound(id.to_owned()));
        }
        items.iter().map(|i| Ok(version_meta(i)?)).collect()
    }

    /// The version named, or the template's active one.
    pub async fn resolve(&self, id: &str, version: Option<u32>) -> Result<u32, TemplateStoreError> {
        match version {
            Some(v) => Ok(v),
            None => self
                .head(id)
                .await?
                .ok_or_else(|| TemplateStoreError::NotFound(id.to_owned()))?
                .active_version
                .ok_or_else(|| TemplateStoreError::NoActiveVersion(id.to_owned())),
        }
    }

    /// One version with its sealed text: the one named, or the active one.
    pub async fn version(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<StoredVersion, TemplateStoreError> {
        let version = self.resolve(id, version).await?;
        let item = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("template_id", s(id))
            .key("sk", s(version_key(version)))
            // A version retired a moment ago is refused from then on.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::new("GetItem", e))?
            .item
            .ok_or_else(|| TemplateStoreError::VersionNotFound {
                id: id.to_owned(),
                version,
            })?;
        let mut meta = version_meta(&item)?;
        // The identity is the key asked for, not what the item says about itself, so a ciphertext
        // moved onto this item is opened under this item's identity and fails.
        meta.template_id = id.to_owned();
        meta.version = version;
        Ok(StoredVersion {
            meta,
            sealed: dynamo::sealed(&item)?,
        })
    }
}

fn version_key(version: u32) -> String {
    format!("V#{version:010}")
}

impl TemplateStore {
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        envelope: Envelope,
        fingerprints: FingerprintStore,
    ) -> Self {
        let table = table.into();
        Self {
            catalog: TemplateCatalog::new(ddb.clone(), table.clone()),
            ddb,
            table,
            envelope,
            fingerprints,
        }
    }

    /// The fingerprints of this store's versions.
    pub fn fingerprints(&self) -> &FingerprintStore {
        &self.fingerprints
    }

    /// Checks, seals and stores a definition as the template's next version, with its sealed
    /// fingerprints, optionally making it the active one. Returns the new version's metadata.
    pub async fn put(
        &self,
        definition: TemplateDefinition,
        created_by: &str,
        activate: bool,
        renderer: &Renderer,
    ) -> Result<VersionMeta, TemplateStoreError> {
        let id = definition.id.clone();
        let (text, settings) = definition.into_parts();
        check_settings(&id, &settings)?;
        renderer.check(&text, &settings.variables)?;
        let declared = |name: &str| settings.variables.iter().any(|v| v.name == name);
        if settings.prompt_cache == CacheLayout::ValuesAfter
            && plain_substitutions(&text.system, declared).is_none()
        {
            return Err(DefinitionError::NotValuesAfter.into());
        }
        let fp = FingerprintStore::compute(&text, settings.leak_guard);
        let plaintext =
            Zeroizing::new(serde_json::to_vec(&text).expect("template text always serialises"));
        drop(text);

        for _ in 0..PUT_ATTEMPTS {
            let latest = self.head(&id).await?.map_or(0, |h| h.latest_version);
            let meta = VersionMeta {
                template_id: id.clone(),
                version: latest + 1,
                status: if activate {
                    VersionStatus::Available
                } else {
                    VersionStatus::Draft
                },
                settings: settings.clone(),
                created_by: created_by.to_owned(),
                created_at: dynamo::now_rfc3339(),
            };
            let sealed = self
                .envelope
                .seal(&plaintext, &EncryptionContext::template(&id, meta.version))
                .await?;
            let fp_put = self.fingerprints.seal(&id, meta.version, &fp).await?;
            match self
                .write_version(&meta, &sealed, fp_put, latest, activate)
                .await
            {
                Err(TemplateStoreError::Conflict(_)) => continue,
                result => return result.map(|()| meta),
            }
        }
        Err(TemplateStoreError::Conflict(id))
    }

    async fn write_version(
        &self,
        meta: &VersionMeta,
        sealed: &Sealed,
        fingerprints: Put,
        previous_latest: u32,
        activate: bool,
    ) -> Result<(), TemplateStoreError> {
        let settings = serde_json::to_string(&meta.settings).expect("settings always serialise");
        let mut put = Put::builder()
            .table_name(&self.table)
            .item("template_id", s(&meta.template_id))
            .item("sk", s(version_key(meta.version)))
            .item("version", n(meta.version))
            .item("status", s(meta.status.as_str()))
            .item("settings", s(settings))
            .item("created_by", s(&meta.created_by))
            .item("created_at", s(&meta.created_at))
            .condition_expression("attribute_not_exists(template_id)");
        for (name, value) in dynamo::sealed_attributes(sealed) {
            put = put.item(name, value);
        }
        let put = put.build().expect("table, item and condition are set");
        let mut set = "SET latest_version = :v, updated_at = :now, created_at = if_not_exists(created_at, :now)".to_owned();
        if activate {
            set.push_str(", active_version = :v");
        }
        let head = Update::builder()
            .table_name(&self.table)
            .key("template_id", s(&meta.template_id))
            .key("sk", s(HEAD))
            .update_expression(set)
            .condition_expression(if previous_latest == 0 {
                "attribute_not_exists(template_id)"
            } else {
                "latest_version = :prev"
            })
            .set_expression_attribute_values(Some(
                [
                    (":v".to_owned(), n(meta.version)),
                    (":now".to_owned(), s(&meta.created_at)),
                ]
                .into_iter()
                .chain((previous_latest > 0).then(|| (":prev".to_owned(), n(previous_latest))))
                .collect(),
            ))
            .build()
            .expect("table, key and expression are set");
        self.transact(
            &meta.template_id,
            vec![
                TransactWriteItem::builder().put(put).build(),
                TransactWriteItem::builder().put(fingerprints).build(),
                TransactWriteItem::builder().update(head).build(),
            ],
        )
        .await
    }

    async fn transact(
        &self,
        id: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), TemplateStoreError> {
        match dynamo::transact(&self.ddb, items).await? {
            true => Ok(()),
            false => Err(TemplateStoreError::Conflict(id.to_owned())),
        }
    }

    /// The head of a template, if it exists.
    pub async fn head(&self, id: &str) -> Result<Option<TemplateSummary>, TemplateStoreError> {
        self.catalog.head(id).await
    }

    /// Every template's head.
    pub async fn list(&self) -> Result<Vec<TemplateSummary>, TemplateStoreError> {
        self.catalog.list().await
    }

    /// Every version of a template, oldest first.
    pub async fn versions(&self, id: &str) -> Result<Vec<VersionMeta>, TemplateStoreError> {
        self.catalog.versions(id).await
    }

    /// The version named, or the template's active one.
    pub async fn resolve(&self, id: &str, version: Option<u32>) -> Result<u32, TemplateStoreError> {
        self.catalog.resolve(id, version).await
    }

    /// One version with its sealed text: the one named, or the active one.
    pub async fn version(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<StoredVersion, TemplateStoreError> {
        self.catalog.version(id, version).await
    }

    /// Opens a version's sealed text. The plaintext is wiped when the returned value is dropped.
    pub async fn decrypt(
        &self,
        stored: &StoredVersion,
    ) -> Result<TemplateText, TemplateStoreError> {
        let ctx = EncryptionContext::template(&stored.meta.template_id, stored.meta.version);
        let plaintext = self.envelope.open(&stored.sealed, &ctx).await?;
        serde_json::from_slice(&plaintext).map_err(TemplateStoreError::Payload)
    }

    /// Computes a version's fingerprints again, from its text and its leak-guard settings, and
    /// stores them in place of those it has: a version sealed by an earlier release gets what this
    /// one fingerprints (runs across template parts; the policy sealed with them).
    pub async fn refingerprint(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<VersionMeta, TemplateStoreError> {
        let stored = self.version(id, version).await?;
        let text = self.decrypt(&stored).await?;
        let fp = FingerprintStore::compute(&text, stored.meta.settings.leak_guard);
        drop(text);
        self.fingerprints
            .replace(id, stored.meta.version, &fp)
            .await?;
        Ok(stored.meta)
    }

    /// Makes an existing version that is not retired the active one; a draft becomes available
    /// to every entitled tenant from then on.
    pub async fn activate(&self, id: &str, version: u32) -> Result<(), TemplateStoreError> {
        self.require_not_retired(id, version).await?;
        let release = Update::builder()
            .table_name(&self.table)
            .key("template_id", s(id))
            .key("sk", s(version_key(version)))
            .update_expression("SET #status = :available")
            .condition_expression("#status IN (:draft, :available)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":available", s(VersionStatus::Available.as_str()))
            .expression_attribute_values(":draft", s(VersionStatus::Draft.as_str()))
            .build()
            .expect("table, key and expression are set");
        let head = Update::builder()
            .table_name(&self.table)
            .key("template_id", s(id))
            .key("sk", s(HEAD))
            .update_expression("SET active_version = :v, updated_at = :now")
            .condition_expression("attribute_exists(template_id)")
            .expression_attribute_values(":v", n(version))
            .expression_attribute_values(":now", s(dynamo::now_rfc3339()))
            .build()
            .expect("table, key and expression are set");
        self.transact(
            id,
            vec![
                TransactWriteItem::builder().update(release).build(),
                TransactWriteItem::builder().update(head).build(),
            ],
        )
        .await
    }

    /// Retires a version so that it can no longer be used or activated. Retiring the active
    /// version leaves the template with none until another is activated.
    pub async fn retire(&self, id: &str, version: u32) -> Result<(), TemplateStoreError> {
        self.require_not_retired(id, version).await?;
        let head = self
            .head(id)
            .await?
            .ok_or_else(|| TemplateStoreError::NotFound(id.to_owned()))?;
        let now = dynamo::now_rfc3339();
        let retire = Update::builder()
            .table_name(&self.table)
            .key("template_id", s(id))
            .key("sk", s(version_key(version)))
            .update_expression("SET #status = :retired")
            .condition_expression("#status <> :retired")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":retired", s(VersionStatus::Retired.as_str()))
            .build()
            .expect("table, key and expression are set");
        let was_active = head.active_version == Some(version);
        let head_update = Update::builder()
            .table_name(&self.table)
            .key("template_id", s(id))
            .key("sk", s(HEAD))
            .update_expression(if was_active {
                "REMOVE active_version SET updated_at = :now"
            } else {
                "SET updated_at = :now"
            })
            .condition_expression(if was_active {
                "active_version = :v"
            } else {
                "attribute_not_exists(active_version) OR active_version <> :v"
            })
            .expression_attribute_values(":v", n(version))
            .expression_attribute_values(":now", s(now))
            .build()
            .expect("table, key and expression are set");
        self.transact(
            id,
            vec![
                TransactWriteItem::builder().update(retire).build(),
                TransactWriteItem::builder().update(head_update).build(),
            ],
        )
        .await
    }

    async fn require_not_retired(&self, id: &str, version: u32) -> Result<(), TemplateStoreError> {
        let stored = self.version(id, Some(version)).await?;
        match stored.meta.status {
            VersionStatus::Draft | VersionStatus::Available => Ok(()),
            VersionStatus::Retired => Err(TemplateStoreError::Retired {
                id: id.to_owned(),
                version,
            }),
        }
    }
}

fn summary(item: &Item) -> Result<TemplateSummary, MalformedItem> {
    Ok(TemplateSummary {
        template_id: dynamo::string(item, "template_id")?,
        latest_version: dynamo::number(item, "latest_version")?,
        active_version: dynamo::opt_number(item, "active_version")?,
        updated_at: dynamo::string(item, "updated_at")?,
    })
}

fn version_meta(item: &Item) -> Result<VersionMeta, MalformedItem> {
    let settings: TemplateSettings = serde_json::from_str(&dynamo::string(item, "settings")?)
        .map_err(|_| MalformedItem("settings"))?;
    let status = match dynamo::string(item, "status")?.as_str() {
        "draft" => VersionStatus::Draft,
        "available" => VersionStatus::Available,
        "retired" => VersionStatus::Retired,
        _ => return Err(MalformedItem("status")),
    };
    Ok(VersionMeta {
        template_id: dynamo::string(item, "template_id")?,
        version: dynamo::number(item, "version")?,
        status,
        settings,
        created_by: dynamo::string(item, "created_by")?,
        created_at: dynamo::string(item, "created_at")?,
    })
}
