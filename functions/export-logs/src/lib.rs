//! export-logs: delivers each opted-in tenant's redacted payload records to the tenant's S3
//! destination, on an EventBridge schedule or on request, exactly once per record.

pub mod config;
pub mod export;
pub mod handler;
pub mod state;
