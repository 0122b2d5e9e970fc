//! The fail-closed check on Bedrock model invocation logging. Before any template is decrypted,
//! invoke asks Bedrock where invocation logs go; if text could land anywhere not on the
//! deployment's allow-list, or the question cannot be answered, the request is refused.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_bedrock::error::ProvideErrorMetadata;
use aws_sdk_bedrock::operation::get_model_invocation_logging_configuration::GetModelInvocationLoggingConfigurationError;
use promptseal::invocation_logging::disallowed_destinations;

#[derive(Debug, thiserror::Error)]
pub enum LoggingCheckError {
    /// Text logging is on to destinations outside the allow-list.
    #[error("Bedrock invocation logging sends text to {count} destination(s) not allowed")]
    TextLoggingEnabled { count: usize },
    #[error("could not read the Bedrock invocation logging configuration")]
    CheckFailed(#[source] Box<aws_sdk_bedrock::Error>),
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
