//! The fail-closed check on Bedrock model invocation logging. Before any template is decrypted,
//! invoke asks Bedrock where invocation logs go; if text could land anywhere not on the
//! deployment's allow-list, or the question cannot be answered, the request is refused.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_bedrock::error::ProvideErrorMetadata;
use aws_sdk_bedrock::operation::get_model_invocation_logging_configuration::GetModelInvocationLoggingConfigurationError;
use aws_sdk_bedrock::types::LoggingConfig;

#[derive(Debug, thiserror::Error)]
pub enum LoggingCheckError {
    /// Text logging is on to destinations outside the allow-list.
    #[error("Bedrock invocation logging sends text to {count} destination(s) not allowed")]
    TextLoggingEnabled { count: usize },
    #[error("could not read the Bedrock invocation logging configuration")]
    CheckFailed(#[source] Box<aws_sdk_bedrock::Error>),
}

/// The destinations a configuration sends text to (or, with `embeddings`, embeddings: a
/// tenant's query embedded for retrieval) that the allow-list does not name. Fails closed: a
/// delivery counts as on unless it is explicitly off. A configuration with no destination
/// delivers nothing.
pub fn disallowed_destinations(
    config: Option<&LoggingConfig>,
    allow: &[String],
    embeddings: bool,
) -> Vec<String> {
    let Some(config) = config else {
        return Vec::new();
    };
    let text = config.text_data_delivery_enabled() != Some(false);
    let vectors = embeddings && config.embedding_data_delivery_enabled() != Some(false);
    if !text && !vectors {
        return Vec::new();
    }
    let mut destinations = Vec::new();
    if let Some(cw) = config.cloud_watch_config() {
        destinations.push(format!("cloudwatch:{}", cw.log_group_name()));
        if let Some(large) = cw.large_data_delivery_s3_config() {
            destinations.push(format!("s3:{}", large.bucket_name()));
        }
    }
    if let Some(s3) = config.s3_config() {
        destinations.push(format!("s3:{}", s3.bucket_name()));
    }
    destinations.retain(|d| !allow.contains(d));
    destinations
}

/// How long the check relies on a completed check.
#[derive(Debug, Clone, Copy)]
pub struct CheckReuse {
    /// A completed check is reused this long without asking again.
    pub ttl: Duration,
    /// When asking again fails, an "ok" at most this old still stands; an older one, or a check
    /// that found text logging, never does.
    pub max_stale: Duration,
}

/// Disallowed destinations found by one check: of text, and of text or embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    text: usize,
    with_embeddings: usize,
}

impl Found {
    const NONE: Self = Self {
        text: 0,
        with_embeddings: 0,
    };

    fn count(self, embeddings: bool) -> usize {
        match embeddings {
            true => self.with_embeddings,
            false => self.text,
        }
    }
}

pub struct LoggingCheck {
    bedrock: aws_sdk_bedrock::Client,
    allow: Vec<String>,
    reuse: CheckReuse,
    /// When the last completed check ran, and how many disallowed destinations it found for
    /// text, and for text or embeddings.
    last: Mutex<Option<(Instant, Found)>>,
}

impl LoggingCheck {
    pub fn new(bedrock: aws_sdk_bedrock::Client, allow: Vec<String>, reuse: CheckReuse) -> Self {
        Self {
            bedrock,
            allow,
            reuse,
            last: Mutex::new(None),
        }
    }

    /// Ok only if no text log can capture the prompt (and, with `embeddings`, no embedding log
    /// the query's vector), with the age of the check that says so. A completed check is reused
    /// for the TTL. A failed check is never cached: it fails the request unless the last check
    /// found nothing and is younger than the hard maximum.
    pub async fn check(&self, embeddings: bool) -> Result<Duration, LoggingCheckError> {
        let last = *self.last.lock().expect("logging check lock poisoned");
        let (age, count) = match last {
            Some((at, count)) if at.elapsed() < self.reuse.ttl => (at.elapsed(), count),
            _ => match self
                .bedrock
                .get_model_invocation_logging_configuration()
                .send()
                .await
            {
                Ok(out) => {
                    let config = out.logging_config();
                    let found = Found {
                        text: disallowed_destinations(config, &self.allow, false).len(),
                        with_embeddings: disallowed_destinations(config, &self.allow, true).len(),
                    };
                    *self.last.lock().expect("logging check lock poisoned") =
                        Some((Instant::now(), found));
                    (Duration::ZERO, found)
                }
                Err(e) => {
                    // Only a check that could not be answered (throttled, timed out, the
                    // service or the network failing) may fall back; a refusal (access denied)
                    // says the check is being prevented and fails the request at once.
                    let transient = e.as_service_error().is_none_or(|e| {
                        matches!(
                            e,
                            GetModelInvocationLoggingConfigurationError::ThrottlingException(_)
                                | GetModelInvocationLoggingConfigurationError::InternalServerException(_)
                        )
                    });
                    let e = aws_sdk_bedrock::Error::from(e);
                    match last {
                        Some((at, Found::NONE))
                            if transient && at.elapsed() < self.reuse.max_stale =>
                        {
                            tracing::warn!(
                                error_code = "logging_check_fallback",
                                aws_error_code = e.code(),
                                check_age_ms = at.elapsed().as_millis() as u64,
                                "logging check failed; relying on the last check, still fresh"
                            );
                            (at.elapsed(), Found::NONE)
                        }
                        _ => return Err(LoggingCheckError::CheckFailed(Box::new(e))),
                    }
                }
            },
        };
        match count.count(embeddings) {
            0 => Ok(age),
            count => Err(LoggingCheckError::TextLoggingEnabled { count }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_bedrock::types::{CloudWatchConfig, S3Config};

    fn cloudwatch(group: &str) -> CloudWatchConfig {
        CloudWatchConfig::builder()
            .log_group_name(group)
            .role_arn("arn:aws:iam::123456789012:role/logs")
            .build()
            .unwrap()
    }

    fn s3(bucket: &str) -> S3Config {
        S3Config::builder().bucket_name(bucket).build().unwrap()
    }

    #[test]
    fn text_logging_is_judged_against_the_allow_list() {
        let allow = vec!["cloudwatch:/isv/bedrock".to_owned()];
        let none: Vec<String> = vec![];
        let cases: Vec<(Option<LoggingConfig>, &[String], usize)> = vec![
            (None, &none, 0),
            // Logging on, but text delivery explicitly off.
            (
                Some(
                    LoggingConfig::builder()
                        .cloud_watch_config(cloudwatch("/x"))
                        .text_data_delivery_enabled(false)
                        .build(),
                ),
                &none,
                0,
            ),
            // Text delivery unspecified counts as on.
            (
                Some(LoggingConfig::builder().s3_config(s3("logs")).build()),
                &none,
                1,
            ),
            (
                Some(
                    LoggingConfig::builder()
                        .cloud_watch_config(cloudwatch("/isv/bedrock"))
                        .text_data_delivery_enabled(true)
                        .build(),
                ),
                &allow,
                0,
            ),
            (
                Some(
                    LoggingConfig::builder()
                        .cloud_watch_config(cloudwatch("/isv/bedrock"))
                        .s3_config(s3("other"))
                        .text_data_delivery_enabled(true)
                        .build(),
                ),
                &allow,
                1,
            ),
            // Nothing configured (what an account without logging returns): nothing delivered.
            (Some(LoggingConfig::builder().build()), &none, 0),
        ];
        for (i, (config, allow, expected)) in cases.iter().enumerate() {
            assert_eq!(
                disallowed_destinations(config.as_ref(), allow, false).len(),
                *expected,
                "case {i}"
            );
        }
    }

    #[test]
    fn embedding_logging_counts_only_for_requests_that_embed() {
        let vectors_only = LoggingConfig::builder()
            .s3_config(s3("logs"))
            .text_data_delivery_enabled(false)
            .embedding_data_delivery_enabled(true)
            .build();
        assert!(disallowed_destinations(Some(&vectors_only), &[], false).is_empty());
        assert_eq!(
            disallowed_destinations(Some(&vectors_only), &[], true).len(),
            1
        );
        // Unspecified counts as on.
        let unspecified = LoggingConfig::builder()
            .s3_config(s3("logs"))
            .text_data_delivery_enabled(false)
            .build();
        assert_eq!(
            disallowed_destinations(Some(&unspecified), &[], true).len(),
            1
        );
        let off = LoggingConfig::builder()
            .s3_config(s3("logs"))
            .text_data_delivery_enabled(false)
            .embedding_data_delivery_enabled(false)
            .build();
        assert!(disallowed_destinations(Some(&off), &[], true).is_empty());
    }
}
