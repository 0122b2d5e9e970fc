//! redact-log: turns Bedrock model invocation logs (a CloudWatch Logs subscription on the log
//! group, in ISV-hosted mode) into redacted per-tenant payload records, without ever decrypting a
//! template: ISV blocks go by the block map invoke put in `requestMetadata`, ISV text repeated in
//! the reply by the template version's fingerprints.

pub mod config;
pub mod handler;
pub mod invocation_log;
