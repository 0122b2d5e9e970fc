//! invoke's errors and their one mapping to an HTTP status and a body
//! `{"error":{"code","message"}}`. Messages name fields, limits and ids at most: never template
//! text, context, input or output. For 5xx the client gets a generic message and the log gets the
//! error code and the AWS error code of the cause (not its message, which could quote a payload).

use std::error::Error as _;

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
use lambda_http::Response;
use lambda_http::http::{StatusCode, header};
use promptseal::envelope::EnvelopeError;
use promptseal::metadata::TooManyBlocks;
use promptseal::render::RenderError;
use promptseal::store::fingerprints::FingerprintError;
use promptseal::store::records::RecordError;
use promptseal::store::templates::TemplateStoreError;
use promptseal::store::usage::UsageError;
use promptseal::template::VariableError;
use promptseal::tenant::TenantError;
use serde_json::json;

use crate::converse::Intervened;
use crate::logging_check::LoggingCheckError;
use crate::retrieval::RetrievalError;

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the request carries no authenticated tenant")]
    Unauthenticated,
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("the request body is not valid JSON")]
    MalformedJson,
    /// A safe description: field paths and limits only.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the tenant comes from the caller's identity; the request body must not name one")]
    TenantInBody,
    #[error(transparent)]
    Variable(#[from] VariableError),
    #[error("{0}")]
    InvalidInference(String),
    #[error("the template needs a value for a variable the request left out")]
    VariableNeeded,
    #[error("the tenant is not registered")]
    UnknownTenant,
    #[error("the tenant is suspended")]
    TenantSuspended,
    #[error("the tenant may not use this template")]
    TemplateNotAllowed,
    #[error("template not found")]
    TemplateNotFound,
    #[error("template version not found")]
    VersionNotFound,
    #[error("the template has no active version")]
    NoActiveVersion,
    #[error("the template version is retired")]
    VersionRetired,
    #[error("the template version is a draft that has not been released")]
    VersionDraft,
    #[error("the tenant's daily quota is used up")]
    QuotaExceeded { retry_after_secs: u64 },
    #[error("the model is throttling requests")]
    ModelThrottled,
    #[error(transparent)]
    LoggingCheck(#[from] LoggingCheckError),
    #[error("KMS is unavailable")]
    Kms(#[source] EnvelopeError),
    #[error("the template could not be opened")]
    TemplateIntegrity(#[source] EnvelopeError),
    #[error("DynamoDB is unavailable")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the template failed to render")]
    Render(#[source] RenderError),
    #[error("the prompt has more blocks than Bedrock's request metadata can describe")]
    TooManyBlocks,
    #[error("the model call failed")]
    Model(#[source] Box<aws_sdk_bedrockruntime::Error>),
    /// A stream that broke Bedrock's event order (a static description).
    #[error("the model's stream ended out of order: {0}")]
    ModelStream(&'static str),
    #[error("the model did not answer in time")]
    ModelTimeout,
    #[error("the model's reply repeated confidential instructions and was withheld")]
    OutputWithheld,
    #[error("an earlier turn sent as the assistant's repeats confidential instructions")]
    HistoryWithheld,
    #[error("the template's guardrail blocked the {}", match .0 { Intervened::Input => "request's input", Intervened::Output => "model's answer" })]
    GuardrailIntervened(Intervened),
    #[error("the template version has no fingerprints")]
    FingerprintsMissing,
    #[error("the template version's fingerprints could not be opened")]
    FingerprintsUnreadable(#[source] FingerprintError),
    #[error(transparent)]
    Retrieval(#[from] RetrievalError),
}

/// The stable code clients and dashboards key on, one per kind of failure, and the HTTP status
/// that goes with it. Every code the handler can return is a variant here, so the codes can be
/// listed (`ErrorCode::VARIANTS`) and checked against openapi.yaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    Unauthenticated,
    BodyTooLarge,
    MalformedJson,
    InvalidRequest,
    TenantInBody,
    MissingVariable,
    UnknownVariable,
    VariableTooLong,
    InvalidInferenceSettings,
    VariableNeeded,
    UnknownTenant,
    TenantSuspended,
    TemplateNotAllowed,
    TemplateNotFound,
    VersionNotFound,
    NoActiveVersion,
    VersionRetired,
    VersionDraft,
    QuotaExceeded,
    ModelThrottled,
    InvocationLoggingEnabled,
    LoggingCheckFailed,
    KmsUnavailable,
    TemplateIntegrity,
    StoreUnavailable,
    TemplateRenderFailed,
    TooManyBlocks,
    ModelError,
    ModelTimeout,
    OutputWithheld,
    HistoryWithheld,
    GuardrailIntervened,
    FingerprintsMissing,
    FingerprintsUnreadable,
    RetrievalFailed,
    TenantRetrievalFailed,
    ContextIntegrity,
    ContextKeyRefused,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            Unauthenticated => StatusCode::UNAUTHORIZED,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            MalformedJson
            | InvalidRequest
            | TenantInBody
            | MissingVariable
            | UnknownVariable
            | VariableTooLong
            | InvalidInferenceSettings
            | VariableNeeded => StatusCode::BAD_REQUEST,
            UnknownTenant | TenantSuspended | TemplateNotAllowed | ContextKeyRefused => {
                StatusCode::FORBIDDEN
            }
            TemplateNotFound | VersionNotFound | NoActiveVersion | VersionRetired
            | VersionDraft => StatusCode::NOT_FOUND,
            QuotaExceeded | ModelThrottled => StatusCode::TOO_MANY_REQUESTS,
            InvocationLoggingEnabled | LoggingCheckFailed | KmsUnavailable | StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            TemplateIntegrity
            | TemplateRenderFailed
            | TooManyBlocks
            | FingerprintsMissing
            | FingerprintsUnreadable
            | ContextIntegrity => StatusCode::INTERNAL_SERVER_ERROR,
            OutputWithheld | HistoryWithheld | GuardrailIntervened => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ModelError | RetrievalFailed | TenantRetrievalFailed => StatusCode::BAD_GATEWAY,
            ModelTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Seconds a client should wait before retrying, for the codes where waiting helps; the
    /// quota's wait is the time to its reset, which only the error knows.
    pub fn retry_after_secs(self) -> Option<u64> {
        use ErrorCode::*;
        match self {
            ModelThrottled => Some(1),
            InvocationLoggingEnabled | LoggingCheckFailed | KmsUnavailable | StoreUnavailable => {
                Some(5)
            }
            _ => None,
        }
    }

    /// Whether responses with this code carry a Retry-After header.
    pub fn sends_retry_after(self) -> bool {
        self == Self::QuotaExceeded || self.retry_after_secs().is_some()
    }
}

impl InvokeError {
    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    pub fn code(&self) -> ErrorCode {
        use InvokeError::*;
        match self {
            Unauthenticated => ErrorCode::Unauthenticated,
            BodyTooLarge { .. } => ErrorCode::BodyTooLarge,
            MalformedJson => ErrorCode::MalformedJson,
            InvalidRequest(_) => ErrorCode::InvalidRequest,
            TenantInBody => ErrorCode::TenantInBody,
            Variable(VariableError::Missing(_)) => ErrorCode::MissingVariable,
            Variable(VariableError::Unknown(_)) => ErrorCode::UnknownVariable,
            Variable(VariableError::TooLong { .. }) => ErrorCode::VariableTooLong,
            InvalidInference(_) => ErrorCode::InvalidInferenceSettings,
            VariableNeeded => ErrorCode::VariableNeeded,
            UnknownTenant => ErrorCode::UnknownTenant,
            TenantSuspended => ErrorCode::TenantSuspended,
            TemplateNotAllowed => ErrorCode::TemplateNotAllowed,
            TemplateNotFound => ErrorCode::TemplateNotFound,
            VersionNotFound => ErrorCode::VersionNotFound,
            NoActiveVersion => ErrorCode::NoActiveVersion,
            VersionRetired => ErrorCode::VersionRetired,
            VersionDraft => ErrorCode::VersionDraft,
            QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            ModelThrottled => ErrorCode::ModelThrottled,
            LoggingCheck(LoggingCheckError::TextLoggingEnabled { .. }) => {
                ErrorCode::InvocationLoggingEnabled
            }
            LoggingCheck(LoggingCheckError::CheckFailed(_)) => ErrorCode::LoggingCheckFailed,
            Kms(_) => ErrorCode::KmsUnavailable,
            TemplateIntegrity(_) => ErrorCode::TemplateIntegrity,
            Store(_) => ErrorCode::StoreUnavailable,
            Render(_) => ErrorCode::TemplateRenderFailed,
            TooManyBlocks => ErrorCode::TooManyBlocks,
            Model(_) | ModelStream(_) => ErrorCode::ModelError,
            ModelTimeout => ErrorCode::ModelTimeout,
            OutputWithheld => ErrorCode::OutputWithheld,
            HistoryWithheld => ErrorCode::HistoryWithheld,
            GuardrailIntervened(_) => ErrorCode::GuardrailIntervened,
            FingerprintsMissing => ErrorCode::FingerprintsMissing,
            FingerprintsUnreadable(_) => ErrorCode::FingerprintsUnreadable,
            Retrieval(RetrievalError::Integrity(_)) => ErrorCode::ContextIntegrity,
            Retrieval(RetrievalError::Kms(_)) => ErrorCode::KmsUnavailable,
            Retrieval(RetrievalError::TenantKeyRefused(_)) => ErrorCode::ContextKeyRefused,
            Retrieval(RetrievalError::TenantSide(_)) => ErrorCode::TenantRetrievalFailed,
            Retrieval(_) => ErrorCode::RetrievalFailed,
        }
    }

    /// Seconds a client should wait before retrying, where that is known.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::QuotaExceeded { retry_after_secs } => Some(*retry_after_secs),
            e => e.code().retry_after_secs(),
        }
    }

    /// What the client is told: the error's own text for 4xx (it names no payload), a generic
    /// sentence for 5xx.
    pub fn public_message(&self) -> String {
        match self {
            Self::LoggingCheck(LoggingCheckError::TextLoggingEnabled { .. }) => {
                "Bedrock model invocation logging would record prompt text; the request was refused"
                    .into()
            }
            Self::LoggingCheck(LoggingCheckError::CheckFailed(_)) => {
                "the Bedrock logging configuration could not be verified; the request was refused"
                    .into()
            }
            e if e.status().is_server_error() => {
                "the service could not complete the request; try again later".into()
            }
            e => e.to_string(),
        }
    }

    /// The AWS error code of the underlying failure, if any (for the log, never the message).
    pub fn aws_error_code(&self) -> Option<String> {
        // retrieve-context's own code (static, from its errorType) says why it refused.
        match self {
            Self::Retrieval(RetrievalError::Refused(code)) => return Some(code.clone()),
            Self::Retrieval(RetrievalError::TenantSide(e)) => {
                if let RetrievalError::Refused(code) = e.as_ref() {
                    return Some(code.clone());
                }
            }
            _ => {}
        }
        let mut source = self.source();
        while let Some(e) = source {
            if let Some(code) = aws_code(e) {
                return Some(code);
            }
            source = e.source();
        }
        None
    }

    /// The error as the client reads it: a response body, or a stream's `error` event.
    pub fn body(&self, request_id: &str) -> serde_json::Value {
        json!({
            "error": { "code": self.code().as_str(), "message": self.public_message() },
            "request_id": request_id,
        })
    }

    pub fn to_response<B: From<String>>(&self, request_id: &str) -> Response<B> {
        let body = self.body(request_id);
        let mut builder = Response::builder()
            .status(self.status())
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(secs) = self.retry_after_secs() {
            builder = builder.header(header::RETRY_AFTER, secs.to_string());
        }
        builder
            .body(B::from(body.to_string()))
            .expect("status and headers are valid")
    }
}

fn aws_code(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(e) = e.downcast_ref::<aws_sdk_bedrockruntime::Error>() {
        return e.code().map(str::to_owned);
    }
    if let Some(e) = e.downcast_ref::<aws_sdk_bedrock::Error>() {
        return e.code().map(str::to_owned);
    }
    if let Some(e) = e.downcast_ref::<aws_sdk_kms::Error>() {
        return e.code().map(str::to_owned);
    }
    if let Some(e) = e.downcast_ref::<aws_sdk_dynamodb::Error>() {
        return e.code().map(str::to_owned);
    }
    None
}

impl From<TemplateStoreError> for InvokeError {
    fn from(e: TemplateStoreError) -> Self {
        match e {
            TemplateStoreError::NotFound(_) => Self::TemplateNotFound,
            TemplateStoreError::VersionNotFound { .. } => Self::VersionNotFound,
            TemplateStoreError::NoActiveVersion(_) => Self::NoActiveVersion,
            TemplateStoreError::Retired { .. } => Self::VersionRetired,
            TemplateStoreError::Envelope(e @ EnvelopeError::Integrity) => {
                Self::TemplateIntegrity(e)
            }
            TemplateStoreError::Envelope(e) => Self::Kms(e),
            TemplateStoreError::Fingerprints(e) => e.into(),
            other => Self::Store(Box::new(other)),
        }
    }
}

impl From<FingerprintError> for InvokeError {
    fn from(e: FingerprintError) -> Self {
        match e {
            FingerprintError::Missing { .. } => Self::FingerprintsMissing,
            e @ (FingerprintError::Envelope(EnvelopeError::Integrity)
            | FingerprintError::Payload(_)) => Self::FingerprintsUnreadable(e),
            FingerprintError::Envelope(e) => Self::Kms(e),
            other => Self::Store(Box::new(other)),
        }
    }
}

impl From<TenantError> for InvokeError {
    fn from(e: TenantError) -> Self {
        Self::Store(Box::new(e))
    }
}

impl From<UsageError> for InvokeError {
    fn from(e: UsageError) -> Self {
        Self::Store(Box::new(e))
    }
}

impl From<RecordError> for InvokeError {
    fn from(e: RecordError) -> Self {
        Self::Store(Box::new(e))
    }
}

impl From<TooManyBlocks> for InvokeError {
    fn from(_: TooManyBlocks) -> Self {
        Self::TooManyBlocks
    }
}

impl From<RenderError> for InvokeError {
    fn from(e: RenderError) -> Self {
        match e {
            RenderError::Undefined { .. } => Self::VariableNeeded,
            RenderError::TooManySegments { .. } => Self::TooManyBlocks,
            other => Self::Render(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_status_a_code_and_a_safe_message() {
        let cases = [
            (InvokeError::Unauthenticated, 401, "unauthenticated"),
            (
                InvokeError::BodyTooLarge { limit: 10 },
                413,
                "body_too_large",
            ),
            (InvokeError::TenantInBody, 400, "tenant_in_body"),
            (
                InvokeError::Variable(VariableError::TooLong {
                    name: "q".into(),
                    max_chars: 5,
                }),
                400,
                "variable_too_long",
            ),
            (InvokeError::TemplateNotAllowed, 403, "template_not_allowed"),
            (InvokeError::VersionRetired, 404, "version_retired"),
            (InvokeError::VersionDraft, 404, "version_draft"),
            (
                InvokeError::QuotaExceeded {
                    retry_after_secs: 30,
                },
                429,
                "quota_exceeded",
            ),
            (InvokeError::ModelTimeout, 504, "model_timeout"),
            (InvokeError::OutputWithheld, 422, "output_withheld"),
            (InvokeError::HistoryWithheld, 422, "history_withheld"),
            (
                InvokeError::from(FingerprintError::Payload(
                    promptseal::leak::MalformedFingerprints,
                )),
                500,
                "fingerprints_unreadable",
            ),
            (
                InvokeError::LoggingCheck(LoggingCheckError::TextLoggingEnabled { count: 1 }),
                503,
                "invocation_logging_enabled",
            ),
        ];
        for (e, status, code) in cases {
            let response = e.to_response::<lambda_http::Body>("req-1");
            assert_eq!(response.status().as_u16(), status, "{code}");
            let lambda_http::Body::Text(body) = response.body() else {
                panic!("text body");
            };
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["error"]["code"], code);
            assert_eq!(e.code().as_str(), code);
            assert_eq!(v["request_id"], "req-1");
        }
        let quota = InvokeError::QuotaExceeded {
            retry_after_secs: 30,
        }
        .to_response::<lambda_http::Body>("r");
        assert_eq!(quota.headers()[header::RETRY_AFTER], "30");
        let render = InvokeError::Render(RenderError::OutOfFuel {
            part: "system".into(),
        });
        assert_eq!(
            render.public_message(),
            "the service could not complete the request; try again later"
        );
    }
}
