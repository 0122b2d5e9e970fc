//! The tenant registry in DynamoDB: who may call, which templates each tenant may use, whether it
//! opted in to payload logging and for how long, and its usage quotas.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};

use crate::dynamo::{self, DynamoError, Item, MalformedItem, n, s};
use crate::template::is_id;

/// Longest payload-record retention a tenant may choose.
pub const MAX_RETENTION_DAYS: u16 = 3650;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

/// Payload logging: off, or on with records kept for `retention_days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadLogging {
    pub enabled: bool,
    pub retention_days: u16,
}

/// Per-day limits; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    pub daily_tokens: Option<u64>,
    pub daily_requests: Option<u64>,
}

/// Where export-logs delivers a tenant's payload records: an S3 bucket and key prefix, written
/// with SSE-KMS under `kms_key_id` when set, through `role_arn` (assumed) when the bucket is in
/// the tenant's own account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportDestination {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// What an operator sets for a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSpec {
    pub tenant_id: String,
    pub templates: BTreeSet<String>,
    pub payload_logging: PayloadLogging,
    pub quotas: Quotas,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportDestination>,
    /// May call draft versions (never activated) by number, to try them before they go live.
    #[serde(default)]
    pub preview: bool,
}

/// A registered tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    #[serde(flatten)]
    pub spec: TenantSpec,
    pub status: TenantStatus,
    pub created_at: String,
    pub updated_at: String,
}

impl Tenant {
    pub fn may_use(&self, template_id: &str) -> bool {
        self.spec.templates.contains(template_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("tenant id {0:?} must be 1-64 characters of A-Z a-z 0-9 . _ -")]
    InvalidId(String),
    #[error("template id {0:?} must be 1-64 characters of A-Z a-z 0-9 . _ -")]
    InvalidTemplateId(String),
    #[error("retention must be between 1 and {MAX_RETENTION_DAYS} days when payload logging is on")]
    Retention,
    #[error("export bucket {0:?} is not a valid S3 bucket name")]
    ExportBucket(String),
    #[error("export prefix must be at most 512 characters, without a leading '/' or '..'")]
    ExportPrefix,
    #[error("export role {0:?} must be an IAM role ARN")]
    ExportRole(String),
    #[error("tenant {0:?} not found")]
    NotFound(String),
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    #[error(transparent)]
    Malformed(#[from] MalformedItem),
}

impl TenantSpec {
    pub fn check(&self) -> Result<(), TenantError> {
        if !is_id(&self.tenant_id) {
            return Err(TenantError::InvalidId(self.tenant_id.clone()));
        }
        if let Some(bad) = self.templates.iter().find(|t| !is_id(t)) {
            return Err(TenantError::InvalidTemplateId(bad.clone()));
        }
        let days = self.payload_logging.retention_days;
        if self.payload_logging.enabled && !(1..=MAX_RETENTION_DAYS).contains(&days) {
            return Err(TenantError::Retention);
        }
        if let Some(export) = &self.export {
            export.check()?;
        }
        Ok(())
    }
}

impl ExportDestination {
    pub fn check(&self) -> Result<(), TenantError> {
        let b = &self.bucket;
        let bucket_ok = (3..=63).contains(&b.len())
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
            && b.starts_with(|c: char| c.is_ascii_alphanumeric())
            && b.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            return Err(TenantError::ExportBucket(b.clone()));
        }
        let p = &self.prefix;
        if p.len() > 512 || p.starts_with('/') || p.split('/').any(|s| s == "..") {
            return Err(TenantError::ExportPrefix);
        }
        if let Some(role) = &self.role_arn
            && !(role.starts_with("arn:aws") && role.contains(":iam::") && role.contains(":role/"))
        {
            return Err(TenantError::ExportRole(role.clone()));
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct TenantRegistry {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
}

impl TenantRegistry {
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            ddb,
            table: table.into(),
        }
    }

    /// Creates a tenant (active) or replaces an existing tenant's settings, keeping its status.
    pub async fn put(&self, spec: &TenantSpec) -> Result<Tenant, TenantError> {
        spec.check()?;
        let now = dynamo::now_rfc3339();
        let mut set: Vec<String> = [
            "#status = if_not_exists(#status, :active)",
            "created_at = if_not_exists(created_at, :now)",
            "updated_at = :now",
            "payload_logging = :logging",
            "retention_days = :days",
            "templates = :templates",
            "preview = :preview",
        ]
        .map(String::from)
        .into();
        let mut remove = Vec::new();
        let mut req = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("tenant_id", s(&spec.tenant_id))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":active", s(TenantStatus::Active.as_str()))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(
                ":logging",
                AttributeValue::Bool(spec.payload_logging.enabled),
            )
            .expression_attribute_values(":days", n(spec.payload_logging.retention_days))
            .expression_attribute_values(":preview", AttributeValue::Bool(spec.preview))
            .expression_attribute_values(
                ":templates",
                AttributeValue::L(spec.templates.iter().map(s).collect()),
            );
        // An unlimited quota, or no export setting, is an absent attribute.
        let export = spec.export.as_ref();
        for (attr, value) in [
            ("daily_token_quota", spec.quotas.daily_tokens.map(n)),
            ("daily_request_quota", spec.quotas.daily_requests.map(n)),
            ("export_bucket", export.map(|e| s(&e.bucket))),
            ("export_prefix", export.map(|e| s(&e.prefix))),
            (
                "export_kms_key_id",
                export.and_then(|e| e.kms_key_id.as_ref().map(s)),
            ),
            (
                "export_role_arn",
                export.and_then(|e| e.role_arn.as_ref().map(s)),
            ),
        ] {
            match value {
                Some(v) => {
                    set.push(format!("{attr} = :{attr}"));
                    req = req.expression_attribute_values(format!(":{attr}"), v);
                }
                None => remove.push(attr),
            }
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let out = req
            .update_expression(expression)
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| DynamoError::new("UpdateItem", e))?;
        Ok(tenant(&out.attributes.unwrap_or_default())?)
    }

    pub async fn get(&self, tenant_id: &str) -> Result<Option<Tenant>, TenantError> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("tenant_id", s(tenant_id))
            .send()
            .await
            .map_err(|e| DynamoError::new("GetItem", e))?;
        Ok(out.item.as_ref().map(tenant).transpose()?)
    }

    /// Every tenant, ordered by id.
    pub async fn list(&self) -> Result<Vec<Tenant>, TenantError> {
        let items = dynamo::scan_all(self.ddb.scan().table_name(&self.table)).await?;
        let mut tenants = items.iter().map(tenant).collect::<Result<Vec<_>, _>>()?;
        tenants.sort_by(|a, b| a.spec.tenant_id.cmp(&b.spec.tenant_id));
        Ok(tenants)
    }

    /// Suspends or reactivates an existing tenant.
    pub async fn set_status(
        &self,
        tenant_id: &str,
        status: TenantStatus,
    ) -> Result<Tenant, TenantError> {
        let out = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("tenant_id", s(tenant_id))
            .update_expression("SET #status = :status, updated_at = :now")
            .condition_expression("attribute_exists(tenant_id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":now", s(dynamo::now_rfc3339()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => Ok(tenant(&out.attributes.unwrap_or_default())?),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => {
                    Err(TenantError::NotFound(tenant_id.to_owned()))
                }
                _ => Err(DynamoError::new("UpdateItem", e).into()),
            },
        }
    }
}

fn tenant(item: &Item) -> Result<Tenant, MalformedItem> {
    let templates = item
        .get("templates")
        .and_then(|v| v.as_l().ok())
        .ok_or(MalformedItem("templates"))?
        .iter()
        .map(|v| v.as_s().cloned().map_err(|_| MalformedItem("templates")))
        .collect::<Result<_, _>>()?;
    let status = match dynamo::string(item, "status")?.as_str() {
        "active" => TenantStatus::Active,
        "suspended" => TenantStatus::Suspended,
        _ => return Err(MalformedItem("status")),
    };
    Ok(Tenant {
        spec: TenantSpec {
            tenant_id: dynamo::string(item, "tenant_id")?,
            templates,
            payload_logging: PayloadLogging {
                enabled: *item
                    .get("payload_logging")
                    .and_then(|v| v.as_bool().ok())
                    .ok_or(MalformedItem("payload_logging"))?,
                retention_days: dynamo::number(item, "retention_days")?,
            },
            quotas: Quotas {
                daily_tokens: dynamo::opt_number(item, "daily_token_quota")?,
                daily_requests: dynamo::opt_number(item, "daily_request_quota")?,
            },
            // Tenants registered before previews existed have no attribute: no previews.
            preview: item.get("preview").and_then(|v| v.as_bool().ok()) == Some(&true),
            export: dynamo::opt_string(item, "export_bucket").map(|bucket| ExportDestination {
                bucket,
                prefix: dynamo::opt_string(item, "export_prefix").unwrap_or_default(),
                kms_key_id: dynamo::opt_string(item, "export_kms_key_id"),
                role_arn: dynamo::opt_string(item, "export_role_arn"),
            }),
        },
        status,
        created_at: dynamo::string(item, "created_at")?,
        updated_at: dynamo::string(item, "updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TenantSpec {
        TenantSpec {
            tenant_id: "acme-corp".into(),
            templates: ["support-reply".to_owned()].into(),
            payload_logging: PayloadLogging {
                enabled: true,
                retention_days: 30,
            },
            quotas: Quotas::default(),
            export: None,
            preview: false,
        }
    }

    #[test]
    fn tenant_specs_are_checked() {
        assert!(spec().check().is_ok());
        let mut s = spec();
        s.tenant_id = "acme corp".into();
        assert!(matches!(s.check(), Err(TenantError::InvalidId(_))));
        let mut s = spec();
        s.templates.insert("bad/id".into());
        assert!(matches!(s.check(), Err(TenantError::InvalidTemplateId(_))));
        let mut s = spec();
        s.payload_logging.retention_days = 0;
        assert!(matches!(s.check(), Err(TenantError::Retention)));
        s.payload_logging.enabled = false;
        assert!(s.check().is_ok());
        let export = |bucket: &str, prefix: &str, role: Option<&str>| {
            let mut s = spec();
            s.export = Some(ExportDestination {
                bucket: bucket.into(),
                prefix: prefix.into(),
                kms_key_id: None,
                role_arn: role.map(str::to_owned),
            });
            s.check()
        };
        assert!(
            export(
                "acme-logs",
                "promptseal/",
                Some("arn:aws:iam::123456789012:role/x")
            )
            .is_ok()
        );
        assert!(matches!(
            export("Acme_Logs", "", None),
            Err(TenantError::ExportBucket(_))
        ));
        assert!(matches!(
            export("acme-logs", "/abs", None),
            Err(TenantError::ExportPrefix)
        ));
        assert!(matches!(
            export("acme-logs", "a/../b", None),
            Err(TenantError::ExportPrefix)
        ));
        assert!(matches!(
            export("acme-logs", "", Some("role")),
            Err(TenantError::ExportRole(_))
        ));
    }
}
