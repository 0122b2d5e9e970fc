//! The leak guard's core: keyed fingerprints of ISV text, and a scanner that finds that text in a
//! model's reply, also when it is disguised.
//!
//! Fingerprints are computed once, when a template version is sealed: the keyed hash (SipHash-1-3
//! under a random per-version key) of every normalised word, and a polynomial of those hashes for
//! every run of `min_span` consecutive words. Without the key the set is a bag of random numbers;
//! it is stored sealed besides (see `FingerprintStore`), so it is never readable at rest either.
//!
//! The scanner turns a reply into the same words and looks every run up, forwards and backwards
//! (reversed text), among the words that belong to the template only (interleaved with filler),
//! inside letter-spaced runs (re-segmented into template words) and inside base64 and hex runs.
//! Case, Unicode look-alikes, punctuation, Markdown, Caesar shifts and reversed words are undone
//! by the word normalisation itself (`words`).
//!
//! Here: the settings and the verdict types. The fingerprint format is in `fingerprint`, the keyed
//! word hash in `hash`, the scanner in `scanner`, and the decoders it reads through in `words`
//! (normalised words), `unescape` (escapes) and `decode` (base64 and hex).

mod decode;
mod fingerprint;
mod hash;
mod scanner;
mod stream;
mod unescape;
mod words;

use serde::{Deserialize, Serialize};

pub use fingerprint::{Fingerprints, KnownText, MalformedFingerprints};
pub use scanner::{Scanner, redact};
pub use stream::{StreamGuard, Verdict, Withheld};

/// The words of `text` as the scanner reads them, normalised (lower-case, look-alikes as the
/// letters they stand for, invisible characters and combining marks dropped), in order: what a
/// "run of template words" means, for audits and tests.
pub fn read_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    words::for_each_word(text, |_, _, word| {
        out.push(word.with_bytes(|w| String::from_utf8_lossy(w).into_owned()));
    });
    out
}

/// Fewest consecutive template words that count as a leak, unless a template says otherwise.
pub const DEFAULT_MIN_SPAN: u32 = 8;
/// Bounds of a template's `min_span`.
pub const MIN_SPAN_RANGE: std::ops::RangeInclusive<u32> = 4..=64;

/// Multiplier of the rolling polynomial over word hashes (odd, so invertible modulo 2^64).
const R: u64 = 0x9E37_79B9_7F4A_7C15;
/// Longest word tried when re-segmenting a letter-spaced run.
const MAX_WORD: usize = 24;
/// Shortest run of letters and digits that makes a stretch of text worth splitting into words
/// run together.
const LONG_WORD: usize = 12;
/// Longest letter-spaced run re-segmented.
const MAX_SPACED_RUN: usize = 4096;
/// Most filler words between two template words of an interleaved run.
const MAX_FILLER: usize = 3;
/// How deep escaped or encoded text inside escaped or encoded text is followed (JSON in JSON
/// holding base64 is three levels).
const MAX_DEPTH: u8 = 3;

/// What a template version does when a reply repeats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeakPolicy {
    /// The reply is withheld.
    #[default]
    Block,
    /// Leaked spans are replaced with a marker.
    Redact,
}

/// A template version's leak-guard settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakSettings {
    #[serde(default)]
    pub policy: LeakPolicy,
    /// Fewest consecutive template words that count as a leak.
    #[serde(default = "default_min_span")]
    pub min_span: u32,
}

impl Default for LeakSettings {
    fn default() -> Self {
        Self {
            policy: LeakPolicy::default(),
            min_span: DEFAULT_MIN_SPAN,
        }
    }
}

fn default_min_span() -> u32 {
    DEFAULT_MIN_SPAN
}

/// How leaked text was disguised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// In order: verbatim or near-verbatim (case, Unicode, punctuation, Markdown, shifted letters,
    /// reversed words).
    Text,
    /// Words in reverse order.
    Reversed,
    /// Template words in order with other words between them.
    Interleaved,
    /// One letter at a time.
    LetterSpaced,
    /// Words run together without spaces.
    Joined,
    /// Inside base64 or hex.
    Encoded,
    /// The request's canary.
    Canary,
}

impl Form {
    /// The name used in responses, records and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Reversed => "reversed",
            Self::Interleaved => "interleaved",
            Self::LetterSpaced => "letter_spaced",
            Self::Joined => "joined",
            Self::Encoded => "encoded",
            Self::Canary => "canary",
        }
    }
}

/// A leaked span of a scanned text. Offsets are bytes; the text itself is never kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub start: usize,
    pub len: usize,
    /// Share of the span's words that are template words in template order (0..=1).
    pub score: f32,
    pub form: Form,
}

/// What the guard did with a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeakAction {
    /// Nothing of the template was found; the reply is unchanged.
    Passed,
    /// Leaked spans were replaced with [`REDACTION_MARKER`].
    Redacted,
    /// The reply was withheld.
    Withheld,
}

impl LeakAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Redacted => "redacted",
            Self::Withheld => "withheld",
        }
    }
}

/// What the guard found and did: counts and forms, never the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakReport {
    pub action: LeakAction,
    /// Leaked spans found.
    pub findings: usize,
    /// Their forms, each once, in order of first appearance.
    pub forms: Vec<Form>,
}

/// What a leaked span is replaced with.
pub const REDACTION_MARKER: &str = "[redacted: template text]";

#[cfg(test)]
mod tests;
