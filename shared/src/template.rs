//! Prompt templates: what an operator writes (a definition), what stays secret (the text), what is
//! stored in the clear to validate requests without decrypting (the metadata), and the checks that
//! keep a bad template or a bad request out.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::context::retrieval::{MAX_QUERY_CHARS, RetrievalSettings, RetrievalSettingsError};
use crate::leak::{LeakSettings, MIN_SPAN_RANGE};

/// Longest accepted template text (system part plus message parts), in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;
/// Upper bound on a template's `max_tokens`.
pub const MAX_TOKENS_LIMIT: u32 = 200_000;

/// Who speaks a message part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Zeroize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One message part of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct MessagePart {
    pub role: Role,
    pub text: String,
}

/// The secret part of a template version: sealed at rest, wiped from memory when dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct TemplateText {
    pub system: String,
    pub messages: Vec<MessagePart>,
}

impl TemplateText {
    /// Every part with a label for error messages: `system`, `messages[0]`, …
    pub fn parts(&self) -> impl Iterator<Item = (String, &str)> {
        std::iter::once(("system".to_owned(), self.system.as_str())).chain(
            self.messages
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("messages[{i}]"), m.text.as_str())),
        )
    }

    pub fn len_bytes(&self) -> usize {
        self.parts().map(|(_, t)| t.len()).sum()
    }
}

/// One declared variable: the only names a request may set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableSpec {
    pub name: String,
    #[serde(default)]
    pub required: bool,
    /// Maximum length of the value, in characters (Unicode scalar values).
    pub max_chars: u32,
}

/// Bounds a request's inference settings must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceBounds {
    /// Largest `maxTokens` a request may ask for; also the default.
    pub max_tokens: u32,
    #[serde(default)]
    pub temperature_min: f32,
    #[serde(default = "one")]
    pub temperature_max: f32,
    /// Used when the request names no temperature.
    pub temperature_default: f32,
}

fn one() -> f32 {
    1.0
}

/// A Bedrock Guardrail the model call runs under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrail {
    pub id: String,
    pub version: String,
}

/// A template version as an operator writes it (the `template put` file, TOML).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateDefinition {
    pub id: String,
    pub model_id: String,
    pub inference: InferenceBounds,
    #[serde(default)]
    pub guardrail: Option<Guardrail>,
    #[serde(default)]
    pub variables: Vec<VariableSpec>,
    /// What a reply that repeats this template gets (default: withheld, 8 words count).
    #[serde(default)]
    pub leak_guard: LeakSettings,
    /// Context retrieved for each request (none unless declared).
    #[serde(default)]
    pub retrieval: Option<RetrievalSettings>,
    /// What Bedrock's prompt cache holds of the system text (default: its literal opening).
    #[serde(default)]
    pub prompt_cache: CacheLayout,
    pub system: String,
    pub messages: Vec<MessagePart>,
}

/// How a version's system text is laid out for Bedrock's prompt cache. Only text that is the
/// same for every request is ever before the cache point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheLayout {
    /// The system text is rendered as written; its literal opening (before the first tag) is
    /// cached when it is long enough.
    #[default]
    Opening,
    /// The system text is sent as written, each `{{ name }}` left as a named placeholder, and
    /// cached whole; the placeholders' values follow the cache point, as the user's blocks. For
    /// system text that uses variables early (so its opening is short) and only as `{{ name }}`.
    ValuesAfter,
}

impl CacheLayout {
    fn is_opening(&self) -> bool {
        *self == Self::Opening
    }
}

impl TemplateDefinition {
    /// Splits the definition into what is sealed and what is stored in the clear.
    pub fn into_parts(self) -> (TemplateText, TemplateSettings) {
        let settings = TemplateSettings {
            model_id: self.model_id,
            inference: self.inference,
            guardrail: self.guardrail,
            variables: self.variables,
            leak_guard: self.leak_guard,
            retrieval: self.retrieval,
            prompt_cache: self.prompt_cache,
        };
        let text = TemplateText {
            system: self.system,
            messages: self.messages,
        };
        (text, settings)
    }
}

/// The clear-text settings of a version: enough to validate a request before decrypting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSettings {
    pub model_id: String,
    pub inference: InferenceBounds,
    pub guardrail: Option<Guardrail>,
    pub variables: Vec<VariableSpec>,
    #[serde(default)]
    pub leak_guard: LeakSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<RetrievalSettings>,
    #[serde(default, skip_serializing_if = "CacheLayout::is_opening")]
    pub prompt_cache: CacheLayout,
}

/// Whether a version may be used, and by whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionStatus {
    /// Never activated: only tenants flagged for previews may call it, by number.
    Draft,
    /// Activated at least once: any entitled tenant may call it.
    Available,
    /// Never used again.
    Retired,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Available => "available",
            Self::Retired => "retired",
        }
    }
}

/// Everything about a stored version except its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionMeta {
    pub template_id: String,
    pub version: u32,
    pub status: VersionStatus,
    #[serde(flatten)]
    pub settings: TemplateSettings,
    pub created_by: String,
    pub created_at: String,
}

/// Why a template definition was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DefinitionError {
    #[error("template id {0:?} must be 1-64 characters of A-Z a-z 0-9 . _ -")]
    InvalidId(String),
    #[error("model_id must not be empty")]
    MissingModel,
    #[error("inference.max_tokens must be between 1 and {MAX_TOKENS_LIMIT}")]
    MaxTokens,
    #[error(
        "inference temperatures must satisfy 0 <= temperature_min <= temperature_default <= temperature_max <= 1"
    )]
    Temperature,
    #[error("guardrail id and version must not be empty")]
    Guardrail,
    #[error(
        "message parts must alternate between roles \"user\" and \"assistant\", starting and ending with \"user\""
    )]
    Messages,
    #[error("variable name {0:?} must be an identifier (A-Z a-z 0-9 _, not starting with a digit)")]
    VariableName(String),
    #[error("variable {0:?} is declared twice")]
    DuplicateVariable(String),
    #[error("variable {0:?} must have max_chars of at least 1")]
    VariableMaxChars(String),
    #[error(
        "leak_guard.min_span must be between {} and {} words",
        MIN_SPAN_RANGE.start(),
        MIN_SPAN_RANGE.end()
    )]
    MinSpan,
    #[error("template text is {0} bytes, over the limit of {MAX_TEMPLATE_BYTES}")]
    TooLarge(usize),
    #[error(
        "{part}: a loop runs a number of rounds the template does not state (a list literal, \
         range() of numbers or a declared variable), or uses call/include/import, so the \
         prompt's blocks cannot be bounded"
    )]
    UnboundedOutputs { part: String },
    #[error(
        "the template can split a prompt into more blocks than Bedrock's request metadata can \
         describe (block map up to {bound} characters, limit {limit}); output fewer values"
    )]
    TooManyBlocks { bound: usize, limit: usize },
    #[error("{part}: {problem}")]
    Text { part: String, problem: String },
    #[error("{part} uses variable {name:?}, which the schema does not declare")]
    UndeclaredVariable { part: String, name: String },
    #[error("variable {0:?} is declared but no part of the template uses it")]
    UnusedVariable(String),
    #[error(transparent)]
    Retrieval(#[from] RetrievalSettingsError),
    #[error("retrieval.query names {0:?}, which the schema does not declare")]
    RetrievalQuery(String),
    #[error("retrieval.query's variable {0:?} must have max_chars of at most {MAX_QUERY_CHARS}")]
    RetrievalQueryTooLong(String),
    #[error(
        "prompt_cache = \"values-after\" needs system text whose only tags are {{{{ name }}}} of \
         declared variables (no statements, filters, comments or whitespace control)"
    )]
    NotValuesAfter,
}

/// Checks an operator's definition apart from its text's syntax (see `render::Renderer::check`).
pub fn check_settings(id: &str, settings: &TemplateSettings) -> Result<(), DefinitionError> {
    if !is_id(id) {
        return Err(DefinitionError::InvalidId(id.to_owned()));
    }
    if settings.model_id.trim().is_empty() {
        return Err(DefinitionError::MissingModel);
    }
    let b = settings.inference;
    if b.max_tokens == 0 || b.max_tokens > MAX_TOKENS_LIMIT {
        return Err(DefinitionError::MaxTokens);
    }
    let ordered = 0.0 <= b.temperature_min
        && b.temperature_min <= b.temperature_default
        && b.temperature_default <= b.temperature_max
        && b.temperature_max <= 1.0;
    if !ordered {
        return Err(DefinitionError::Temperature);
    }
    if let Some(g) = &settings.guardrail
        && (g.id.trim().is_empty() || g.version.trim().is_empty())
    {
        return Err(DefinitionError::Guardrail);
    }
    if !MIN_SPAN_RANGE.contains(&settings.leak_guard.min_span) {
        return Err(DefinitionError::MinSpan);
    }
    let mut seen = BTreeSet::new();
    for v in &settings.variables {
        if !is_identifier(&v.name) {
            return Err(DefinitionError::VariableName(v.name.clone()));
        }
        if !seen.insert(v.name.as_str()) {
            return Err(DefinitionError::DuplicateVariable(v.name.clone()));
        }
        if v.max_chars == 0 {
            return Err(DefinitionError::VariableMaxChars(v.name.clone()));
        }
    }
    if let Some(retrieval) = &settings.retrieval {
        retrieval.check()?;
        let query = settings
            .variables
            .iter()
            .find(|v| v.name == retrieval.query);
        match query {
            None => return Err(DefinitionError::RetrievalQuery(retrieval.query.clone())),
            // retrieve-context embeds at most this much: a longer value would fail every time.
            Some(v) if v.max_chars as usize > MAX_QUERY_CHARS => {
                return Err(DefinitionError::RetrievalQueryTooLong(v.name.clone()));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Ids of templates (and tenants): short, printable, safe in keys, logs and request metadata.
pub fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

/// Why a request's variables were refused. Names come from the request or the schema; values are
/// never quoted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VariableError {
    #[error("required variable {0:?} is missing")]
    Missing(String),
    #[error("variable {0:?} is not declared by this template")]
    Unknown(String),
    #[error("variable {name:?} is longer than {max_chars} characters")]
    TooLong { name: String, max_chars: u32 },
}

/// Checks a request's variables against the schema: every required one present, none unknown,
/// none too long.
pub fn check_variables(
    schema: &[VariableSpec],
    vars: &BTreeMap<String, String>,
) -> Result<(), VariableError> {
    for name in vars.keys() {
        if !schema.iter().any(|s| &s.name == name) {
            return Err(VariableError::Unknown(name.clone()));
        }
    }
    for spec in schema {
        match vars.get(&spec.name) {
            None if spec.required => return Err(VariableError::Missing(spec.name.clone())),
            Some(value) if value.chars().count() > spec.max_chars as usize => {
                return Err(VariableError::TooLong {
                    name: spec.name.clone(),
                    max_chars: spec.max_chars,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Vec<VariableSpec> {
        vec![
            VariableSpec {
                name: "question".into(),
                required: true,
                max_chars: 10,
            },
            VariableSpec {
                name: "tone".into(),
                required: false,
                max_chars: 8,
            },
        ]
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn variables_are_checked_against_the_schema() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Result<(), VariableError>);
        let cases: &[Case] = &[
            (&[("question", "why?")], Ok(())),
            (&[("question", "why?"), ("tone", "formal")], Ok(())),
            (
                &[("tone", "formal")],
                Err(VariableError::Missing("question".into())),
            ),
            (
                &[("question", "why?"), ("tenant_id", "other")],
                Err(VariableError::Unknown("tenant_id".into())),
            ),
            (
                &[("question", "0123456789a")],
                Err(VariableError::TooLong {
                    name: "question".into(),
                    max_chars: 10,
                }),
            ),
            // Length is counted in characters, not bytes.
            (&[("question", "éééééééééé")], Ok(())),
        ];
        for (input, expected) in cases {
            assert_eq!(
                &check_variables(&schema(), &vars(input)),
                expected,
                "{input:?}"
            );
        }
    }

    fn settings() -> TemplateSettings {
        TemplateSettings {
            model_id: "anthropic.claude-3-haiku-20240307-v1:0".into(),
            inference: InferenceBounds {
                max_tokens: 512,
                temperature_min: 0.0,
                temperature_max: 0.7,
                temperature_default: 0.2,
            },
            guardrail: None,
            variables: schema(),
            leak_guard: LeakSettings::default(),
            retrieval: None,
            prompt_cache: Default::default(),
        }
    }

    #[test]
    fn a_retrieval_query_is_a_declared_variable_short_enough_to_embed() {
        let mut s = settings();
        let retrieval = |query: &str| {
            Some(RetrievalSettings {
                collections: vec!["isv:kb".to_owned().try_into().unwrap()],
                query: query.into(),
                k: 4,
                min_score: 0.2,
                max_chars: 1000,
                placement: Default::default(),
            })
        };
        s.retrieval = retrieval("question");
        assert_eq!(check_settings("t", &s), Ok(()));
        s.retrieval = retrieval("topic");
        assert_eq!(
            check_settings("t", &s),
            Err(DefinitionError::RetrievalQuery("topic".into()))
        );
        s.retrieval = retrieval("question");
        s.variables[0].max_chars = MAX_QUERY_CHARS as u32 + 1;
        assert_eq!(
            check_settings("t", &s),
            Err(DefinitionError::RetrievalQueryTooLong("question".into()))
        );
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(check_settings("support-reply.v2", &settings()), Ok(()));
        assert_eq!(
            check_settings("bad id", &settings()),
            Err(DefinitionError::InvalidId("bad id".into()))
        );
        let mut s = settings();
        s.inference.max_tokens = 0;
        assert_eq!(check_settings("t", &s), Err(DefinitionError::MaxTokens));
        let mut s = settings();
        s.inference.temperature_default = 0.9;
        assert_eq!(check_settings("t", &s), Err(DefinitionError::Temperature));
        let mut s = settings();
        s.variables.push(s.variables[0].clone());
        assert_eq!(
            check_settings("t", &s),
            Err(DefinitionError::DuplicateVariable("question".into()))
        );
        let mut s = settings();
        s.variables[1].name = "1st".into();
        assert_eq!(
            check_settings("t", &s),
            Err(DefinitionError::VariableName("1st".into()))
        );
        let mut s = settings();
        s.model_id = " ".into();
        assert_eq!(check_settings("t", &s), Err(DefinitionError::MissingModel));
        for span in [3, 65] {
            let mut s = settings();
            s.leak_guard.min_span = span;
            assert_eq!(check_settings("t", &s), Err(DefinitionError::MinSpan));
        }
    }
}
