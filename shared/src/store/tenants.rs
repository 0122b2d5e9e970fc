//! The tenant registry in DynamoDB: one item per tenant, written whole by `tenant put` and read
//! by every function that acts for a tenant.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use crate::store::dynamo::{self, DynamoError, Item, MalformedItem, n, s};
use crate::tenant::{
    ExportDestination, PayloadLogging, Quotas, Tenant, TenantContext, TenantError, TenantSpec,
    TenantStatus,
};

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
            ("export_account_id", export.map(|e| s(&e.account_id))),
            (
                "export_kms_key_id",
                export.and_then(|e| e.kms_key_id.as_ref().map(s)),
            ),
            (
                "export_role_arn",
                export.and_then(|e| e.role_arn.as_ref().map(s)),
            ),
            (
                "context_key_arn",
                spec.context.as_ref().map(|c| s(&c.key_arn)),
            ),
            (
                "context_function",
                spec.context
                    .as_ref()
                    .and_then(|c| c.function.as_ref().map(s)),
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
        // The external id is the tenant's for good once it has had a destination: kept when
        // the destination changes or is removed, so the role's trust policy keeps working.
        if export.is_some() {
            set.push("export_external_id = if_not_exists(export_external_id, :xid)".to_owned());
            req = req.expression_attribute_values(
                ":xid",
                s(format!("promptseal-{}", crate::random_hex::<16>())),
            );
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
                // Registered before accounts were: none, so every write is refused by S3.
                account_id: dynamo::opt_string(item, "export_account_id").unwrap_or_default(),
                kms_key_id: dynamo::opt_string(item, "export_kms_key_id"),
                role_arn: dynamo::opt_string(item, "export_role_arn"),
                external_id: dynamo::opt_string(item, "export_external_id"),
            }),
            context: dynamo::opt_string(item, "context_key_arn").map(|key_arn| TenantContext {
                key_arn,
                function: dynamo::opt_string(item, "context_function"),
            }),
        },
        status,
        created_at: dynamo::string(item, "created_at")?,
        updated_at: dynamo::string(item, "updated_at")?,
    })
}
