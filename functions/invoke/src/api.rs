//! The `POST /v1/invoke` request and response bodies (documented in openapi.yaml), and the checks
//! a request must pass before anything is loaded.

use std::collections::BTreeMap;

use promptseal::assembly::{ContextDocument, MAX_HISTORY_TURNS, Turn};
use promptseal::leak::LeakReport;
use promptseal::records::TokenUsage;
use promptseal::template::{InferenceBounds, Role, is_id};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::InvokeError;

pub const MAX_CONTEXT_DOCUMENTS: usize = 16;
pub const MAX_CONTEXT_CHARS: usize = 32 * 1024;
/// Longest earlier turn of a conversation, in characters.
pub const MAX_TURN_CHARS: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvokeRequest {
    pub template_id: String,
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub context: Vec<ContextDocumentIn>,
    #[serde(default)]
    pub inference: InferenceRequest,
    /// A conversation's earlier turns, oldest first, after the template's own messages; the
    /// last is the user's new message.
    #[serde(default)]
    pub history: Vec<TurnIn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnIn {
    pub role: Role,
    pub text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextDocumentIn {
    pub id: String,
    pub text: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceRequest {
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

#[derive(Debug, Serialize)]
pub struct InvokeResponse {
    pub output: String,
    #[serde(flatten)]
    pub summary: ReplySummary,
}

/// Everything about an answer but its text: the buffered response holds it beside the output,
/// a stream sends it as its final `done` event.
#[derive(Debug, Serialize)]
pub struct ReplySummary {
    pub request_id: String,
    pub template_id: String,
    pub template_version: u32,
    pub model_id: String,
    pub stop_reason: String,
    pub usage: Usage,
    /// What the output leak guard did (counts and forms, never text).
    pub guard: LeakReport,
}

#[derive(Debug, Serialize)]
pub struct Usage {
    /// Input tokens billed at the model's full rate.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from Bedrock's prompt cache (the version's opening, cached by an
    /// earlier request).
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_input_tokens: u64,
    /// All of them.
    pub total_tokens: u64,
}

impl From<TokenUsage> for Usage {
    fn from(u: TokenUsage) -> Self {
        Self {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_input_tokens: u.cache_read_input_tokens,
            cache_write_input_tokens: u.cache_write_input_tokens,
            total_tokens: u.total(),
        }
    }
}

/// Parses a request body. A body that names a tenant is refused outright, whatever else it holds.
pub fn parse(body: &[u8]) -> Result<InvokeRequest, InvokeError> {
    // One pass for a well-formed body; a body that does not fit (a tenant field is an unknown
    // field) is looked at again only to say why.
    let request: InvokeRequest = serde_json::from_slice(body).map_err(|_| refusal(body))?;
    if !is_id(&request.template_id) {
        return Err(InvokeError::InvalidRequest(
            "template_id must be 1-64 characters of A-Z a-z 0-9 . _ -".into(),
        ));
    }
    if request.context.len() > MAX_CONTEXT_DOCUMENTS {
        return Err(InvokeError::InvalidRequest(format!(
            "at most {MAX_CONTEXT_DOCUMENTS} context documents are accepted"
        )));
    }
    for (i, doc) in request.context.iter().enumerate() {
        if !is_id(&doc.id) {
            return Err(InvokeError::InvalidRequest(format!(
                "context[{i}].id must be 1-64 characters of A-Z a-z 0-9 . _ -"
            )));
        }
        if doc.text.chars().count() > MAX_CONTEXT_CHARS {
            return Err(InvokeError::InvalidRequest(format!(
                "context[{i}].text is longer than {MAX_CONTEXT_CHARS} characters"
            )));
        }
    }
    if request.history.len() > MAX_HISTORY_TURNS {
        return Err(InvokeError::InvalidRequest(format!(
            "history: at most {MAX_HISTORY_TURNS} earlier turns are accepted"
        )));
    }
    for (i, turn) in request.history.iter().enumerate() {
        if turn.text.trim().is_empty() {
            return Err(InvokeError::InvalidRequest(format!(
                "history[{i}].text is empty"
            )));
        }
        if turn.text.chars().count() > MAX_TURN_CHARS {
            return Err(InvokeError::InvalidRequest(format!(
                "history[{i}].text is longer than {MAX_TURN_CHARS} characters"
            )));
        }
    }
    Ok(request)
}

/// Why a body that does not deserialise is refused, without echoing any of it.
fn refusal(body: &[u8]) -> InvokeError {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return InvokeError::MalformedJson;
    };
    let names_tenant = value.as_object().is_some_and(|o| {
        o.keys().any(|k| {
            let k: String = k
                .to_ascii_lowercase()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            k == "tenant" || k == "tenantid"
        })
    });
    if names_tenant {
        return InvokeError::TenantInBody;
    }
    let Err(e) = serde_path_to_error::deserialize::<_, InvokeRequest>(value) else {
        return InvokeError::MalformedJson;
    };
    let path = e.path().to_string();
    // The path names fields, but a field name is the caller's text: quote only plain ones.
    let plain = path.len() <= 64
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c));
    InvokeError::InvalidRequest(if plain && path != "." {
        format!("the request body does not match the API at `{path}`")
    } else {
        "the request body does not match the API".into()
    })
}

impl InvokeRequest {
    /// The earlier turns, as the assembly takes them.
    pub fn history(&self) -> Vec<Turn> {
        self.history
            .iter()
            .map(|t| Turn {
                role: t.role,
                text: Zeroizing::new(t.text.clone()),
            })
            .collect()
    }

    pub fn context_documents(&self) -> Vec<ContextDocument> {
        self.context
            .iter()
            .map(|d| ContextDocument {
                id: d.id.clone(),
                text: d.text.clone(),
            })
            .collect()
    }
}

/// The inference settings to use: the request's, within the template's bounds, or the defaults.
pub fn inference_settings(
    requested: &InferenceRequest,
    bounds: &InferenceBounds,
) -> Result<(u32, f32), InvokeError> {
    let max_tokens = requested.max_tokens.unwrap_or(bounds.max_tokens);
    if max_tokens == 0 || max_tokens > bounds.max_tokens {
        return Err(InvokeError::InvalidInference(format!(
            "inference.max_tokens must be between 1 and {}",
            bounds.max_tokens
        )));
    }
    let temperature = requested.temperature.unwrap_or(bounds.temperature_default);
    if !(bounds.temperature_min..=bounds.temperature_max).contains(&temperature) {
        return Err(InvokeError::InvalidInference(format!(
            "inference.temperature must be between {} and {}",
            bounds.temperature_min, bounds.temperature_max
        )));
    }
    Ok((max_tokens, temperature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_naming_a_tenant_is_refused() {
        for body in [
            r#"{"template_id":"t","tenant_id":"other"}"#,
            r#"{"template_id":"t","tenantId":"other"}"#,
            r#"{"Tenant":"other","template_id":"t"}"#,
            r#"{"template_id":"t","tenant-id":"x"}"#,
        ] {
            assert!(
                matches!(parse(body.as_bytes()), Err(InvokeError::TenantInBody)),
                "{body}"
            );
        }
    }

    #[test]
    fn malformed_and_mismatched_bodies_are_refused_without_echoing_values() {
        assert!(matches!(
            parse(b"{not json"),
            Err(InvokeError::MalformedJson)
        ));
        let e = parse(br#"{"template_id":"t","variables":{"q":7}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the request body does not match the API at `variables.q`"
        );
        let e = parse(br#"{"template_id":"t","inference":{"max_tokens":"SECRET"}}"#).unwrap_err();
        assert!(!e.to_string().contains("SECRET"));
        let e = parse(br#"{"template_id":"t","SECRET field":1}"#).unwrap_err();
        assert!(!e.to_string().contains("SECRET"), "{e}");
        assert!(matches!(
            parse(br#"{"template_id":"a b"}"#),
            Err(InvokeError::InvalidRequest(_))
        ));
        let many: Vec<_> = (0..17)
            .map(|i| format!(r#"{{"id":"d{i}","text":"x"}}"#))
            .collect();
        let body = format!(r#"{{"template_id":"t","context":[{}]}}"#, many.join(","));
        assert!(matches!(
            parse(body.as_bytes()),
            Err(InvokeError::InvalidRequest(_))
        ));
    }

    #[test]
    fn inference_settings_stay_within_the_template_bounds() {
        let bounds = InferenceBounds {
            max_tokens: 500,
            temperature_min: 0.0,
            temperature_max: 0.7,
            temperature_default: 0.2,
        };
        let req = |max_tokens, temperature| InferenceRequest {
            max_tokens,
            temperature,
        };
        assert_eq!(
            inference_settings(&req(None, None), &bounds).unwrap(),
            (500, 0.2)
        );
        assert_eq!(
            inference_settings(&req(Some(100), Some(0.5)), &bounds).unwrap(),
            (100, 0.5)
        );
        assert!(inference_settings(&req(Some(501), None), &bounds).is_err());
        assert!(inference_settings(&req(Some(0), None), &bounds).is_err());
        assert!(inference_settings(&req(None, Some(0.9)), &bounds).is_err());
    }
}
