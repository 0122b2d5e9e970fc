//! The handler: an EventBridge event in. The schedule (`Scheduled Event`) exports every opted-in
//! tenant with a destination from its watermark; an `ExportRequested` event (source
//! `promptseal.admin`, detail `{tenant_id, from, until}`) exports that tenant's window on request.
//! One tenant's failure does not stop the others; the run then fails so Lambda retries it, and the
//! retry redoes only what did not finish. An event that no retry can fix (unknown, malformed, for a
//! tenant that does not export) is logged, counted and acknowledged.

use std::time::SystemTime;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_smithy_types::date_time::{DateTime, Format};
use promptseal::records::timestamp_micros;
use promptseal::store::tenants::TenantRegistry;
use promptseal::telemetry::{MetricRecord, Unit};
use promptseal::tenant::{Tenant, TenantError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::export::{Delivered, ExportError, ExportKind, Exporter, Window};

pub struct Deps {
    pub tenants: TenantRegistry,
    pub exporter: Exporter,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportRequest {
    tenant_id: String,
    from: String,
    until: String,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub exports: Vec<Delivered>,
    /// Tenants whose export failed this run (retried with the run).
    pub failed: Vec<String>,
    /// The code of an event refused for good (not retried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportLogsError {
    #[error("unknown event type {0:?}: expected \"Scheduled Event\" or \"ExportRequested\"")]
    UnknownEvent(String),
    #[error("the export request is malformed: it needs tenant_id, from and until (RFC 3339)")]
    MalformedRequest,
    #[error("the export window must have from before until")]
    EmptyWindow,
    #[error("tenant {0:?} is not registered")]
    UnknownTenant(String),
    #[error("tenant {0:?} has no payload logging or no export destination")]
    NotExporting(String),
    #[error("the export of {0} tenant(s) failed; the run is retried")]
    Failed(usize),
    #[error(transparent)]
    Tenants(#[from] TenantError),
    #[error(transparent)]
    Export(#[from] ExportError),
}

impl ExportLogsError {
    /// A stable code for logs and alarms.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownEvent(_) => "unknown_event",
            Self::MalformedRequest => "malformed_request",
            Self::EmptyWindow => "empty_window",
            Self::UnknownTenant(_) => "unknown_tenant",
            Self::NotExporting(_) => "not_exporting",
            Self::Failed(_) => "export_failed",
            Self::Tenants(_) => "tenants_unavailable",
            Self::Export(ExportError::Unfinished) => "window_too_large",
            Self::Export(ExportError::IncompleteDestination) => "destination_incomplete",
            Self::Export(_) => "export_failed",
        }
    }

    /// Whether running the event again could succeed: a store or a destination failed (not an
    /// on-demand window too big for one run).
    pub fn retry_can_fix(&self) -> bool {
        match self {
            Self::Export(ExportError::Unfinished | ExportError::IncompleteDestination) => false,
            Self::Failed(_) | Self::Tenants(_) | Self::Export(_) => true,
            _ => false,
        }
    }
}

/// Reported to Lambda with its stable code as the error type.
impl From<ExportLogsError> for lambda_runtime::Diagnostic {
    fn from(e: ExportLogsError) -> Self {
        Self {
            error_type: e.code().to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// Opted in and with somewhere to deliver to.
fn exporting(tenant: &Tenant) -> bool {
    tenant.spec.payload_logging.enabled && tenant.spec.export.is_some()
}

/// Handles one EventBridge event (any JSON: what is not an event of ours is refused).
pub async fn handle(deps: &Deps, event: Value) -> Result<Summary, ExportLogsError> {
    let result = match serde_json::from_value::<EventBridgeEvent>(event) {
        Ok(event) => match event.detail_type.as_str() {
            "Scheduled Event" => scheduled(deps).await,
            "ExportRequested" => on_demand(deps, event.detail).await,
            other => Err(ExportLogsError::UnknownEvent(other.to_owned())),
        },
        Err(_) => Err(ExportLogsError::UnknownEvent(String::new())),
    };
    match result {
        Ok(summary) => {
            tracing::info!(
                exports = summary.exports.len(),
                records = summary.exports.iter().map(|d| d.records).sum::<usize>(),
                "export run finished"
            );
            Ok(summary)
        }
        Err(e) if e.retry_can_fix() => {
            tracing::error!(error_code = e.code(), error = %e, "export run failed; it is retried");
            Err(e)
        }
        Err(e) => {
            tracing::warn!(error_code = e.code(), error = %e, "export event refused");
            MetricRecord {
                namespace: "promptseal",
                dimensions: &[("Function", "export-logs"), ("Refused", e.code())],
                metrics: &[("EventsRefused", 1.0, Unit::Count)],
                properties: &[],
            }
            .emit();
            Ok(Summary {
                refused: Some(e.code()),
                ..Summary::default()
            })
        }
    }
}

async fn scheduled(deps: &Deps) -> Result<Summary, ExportLogsError> {
    let mut summary = Summary::default();
    for tenant in deps.tenants.list().await?.iter().filter(|t| exporting(t)) {
        let id = &tenant.spec.tenant_id;
        let dest = tenant
            .spec
            .export
            .as_ref()
            .expect("exporting tenants have a destination");
        match deps.exporter.scheduled(id, dest).await {
            Ok(Some(delivered)) => {
                tracing::info!(
                    tenant_id = %id,
                    records = delivered.records,
                    objects = delivered.objects,
                    finished = delivered.finished,
                    "tenant export delivered"
                );
                summary.exports.push(delivered);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(tenant_id = %id, error_code = "export_failed", error = %e, "tenant export failed");
                summary.failed.push(id.clone());
            }
        }
    }
    if !summary.failed.is_empty() {
        return Err(ExportLogsError::Failed(summary.failed.len()));
    }
    Ok(summary)
}

/// `2026-11-22T00:00:00Z` (any RFC 3339 UTC time) in the stored-time form.
fn stored_time(t: &str) -> Option<String> {
    let t = DateTime::from_str(t, Format::DateTime).ok()?;
    Some(timestamp_micros(SystemTime::try_from(t).ok()?))
}

async fn on_demand(deps: &Deps, detail: Value) -> Result<Summary, ExportLogsError> {
    let request: ExportRequest =
        serde_json::from_value(detail).map_err(|_| ExportLogsError::MalformedRequest)?;
    let window = Window {
        from: stored_time(&request.from).ok_or(ExportLogsError::MalformedRequest)?,
        until: stored_time(&request.until).ok_or(ExportLogsError::MalformedRequest)?,
    };
    if window.from >= window.until {
        return Err(ExportLogsError::EmptyWindow);
    }
    let tenant = deps
        .tenants
        .get(&request.tenant_id)
        .await?
        .ok_or_else(|| ExportLogsError::UnknownTenant(request.tenant_id.clone()))?;
    if !exporting(&tenant) {
        return Err(ExportLogsError::NotExporting(request.tenant_id));
    }
    let dest = tenant
        .spec
        .export
        .as_ref()
        .expect("exporting tenants have a destination");
    let delivered = deps
        .exporter
        .export(&request.tenant_id, dest, ExportKind::OnDemand, &window)
        .await?;
    Ok(Summary {
        exports: vec![delivered],
        ..Summary::default()
    })
}
