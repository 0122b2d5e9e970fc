//! Embedding models behind `InvokeModel` (`POST /model/{modelId}/invoke`), in their own request
//! and response formats: Amazon Titan Text Embeddings V2 and Cohere Embed v3. The vectors are
//! deterministic and still rank related text higher: every word (lowercased, common words left
//! out, plurals folded) and every pair of adjacent words is hashed into one of the vector's
//! dimensions, with a sign from the hash (feature hashing), so texts sharing words and phrases
//! point the same way.

use serde_json::{Value, json};

use crate::converse::{Invalid, count_tokens};

/// Titan V2's accepted dimensions; the first is its default.
const TITAN_DIMENSIONS: [usize; 3] = [1024, 512, 256];
/// Titan V2's longest input, in characters.
const TITAN_MAX_CHARS: usize = 50_000;
/// Cohere Embed v3's dimensions, texts per call and characters per text.
const COHERE_DIMENSIONS: usize = 1024;
const COHERE_MAX_TEXTS: usize = 96;
const COHERE_MAX_CHARS: usize = 2048;
/// Cohere Embed v3's longest input in tokens, which `truncate` applies to.
const COHERE_MAX_TOKENS: usize = 512;
/// Weight of a pair of adjacent words against a single word.
const BIGRAM_WEIGHT: f32 = 0.5;

/// Which embedding format a model id speaks, if any.
pub fn is_embedding_model(model_id: &str) -> bool {
    model_id.starts_with("amazon.titan-embed-text-v2") || model_id.starts_with("cohere.embed-")
}

/// The response body of an embedding call and the input tokens it counted.
pub struct Embedded {
    pub body: Value,
    pub input_tokens: usize,
}

/// Answers an `InvokeModel` body for an embedding model.
pub fn invoke(model_id: &str, body: &Value) -> Result<Embedded, Invalid> {
    if model_id.starts_with("cohere.embed-") {
        cohere(body)
    } else {
        titan(body)
    }
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid(message.into())
}

fn titan(body: &Value) -> Result<Embedded, Invalid> {
    let text = body["inputText"]
        .as_str()
        .ok_or_else(|| invalid("Malformed input request: required key [inputText] not found"))?;
    if text.is_empty() || text.chars().count() > TITAN_MAX_CHARS {
        return Err(invalid(format!(
            "Malformed input request: expected inputText of 1 to {TITAN_MAX_CHARS} characters"
        )));
    }
    let dimensions = match &body["dimensions"] {
        Value::Null => TITAN_DIMENSIONS[0],
        v => v
            .as_u64()
            .and_then(|d| TITAN_DIMENSIONS.into_iter().find(|&t| t as u64 == d))
            .ok_or_else(|| {
                invalid("Malformed input request: dimensions must be 256, 512 or 1024")
            })?,
    };
    let normalize = match &body["normalize"] {
        Value::Null => true,
        v => v
            .as_bool()
            .ok_or_else(|| invalid("Malformed input request: normalize must be a boolean"))?,
    };
    let types = match &body["embeddingTypes"] {
        Value::Null => vec!["float"],
        v => string_list(v, &["float", "binary"], "embeddingTypes")?,
    };
    let vector = features(text, dimensions, normalize);
    let mut by_type = serde_json::Map::new();
    for kind in &types {
        let value = match *kind {
            "float" => json!(vector),
            _ => json!(
                vector
                    .iter()
                    .map(|&x| u8::from(x > 0.0))
                    .collect::<Vec<_>>()
            ),
        };
        by_type.insert((*kind).to_owned(), value);
    }
    let input_tokens = count_tokens(text);
    Ok(Embedded {
        body: json!({
            "embedding": vector,
            "inputTextTokenCount": input_tokens,
            "embeddingsByType": by_type,
        }),
        input_tokens,
    })
}

fn cohere(body: &Value) -> Result<Embedded, Invalid> {
    let texts = body["texts"]
        .as_array()
        .ok_or_else(|| invalid("Malformed input request: texts is required"))?;
    if texts.len() > COHERE_MAX_TEXTS {
        return Err(invalid(format!(
            "Malformed input request: at most {COHERE_MAX_TEXTS} texts per call"
        )));
    }
    match body["input_type"].as_str() {
        Some("search_document" | "search_query" | "classification" | "clustering") => {}
        _ => {
            return Err(invalid(
                "Malformed input request: input_type must be search_document, search_query, \
                 classification or clustering",
            ));
        }
    }
    // Over 2,048 characters a text is refused whatever `truncate` says; `truncate` decides what
    // happens to a text over the token limit.
    let truncate = body["truncate"].as_str().unwrap_or("NONE");
    let texts = texts
        .iter()
        .map(|t| {
            let t = t
                .as_str()
                .ok_or_else(|| invalid("Malformed input request: texts must be strings"))?;
            if t.chars().count() > COHERE_MAX_CHARS {
                return Err(invalid(format!(
                    "Malformed input request: a text is longer than {COHERE_MAX_CHARS} characters"
                )));
            }
            let words: Vec<&str> = t.split_whitespace().collect();
            match truncate {
                _ if count_tokens(t) <= COHERE_MAX_TOKENS => Ok(t.to_owned()),
                "END" => Ok(words[..COHERE_MAX_TOKENS.min(words.len())].join(" ")),
                "START" => Ok(words[words.len().saturating_sub(COHERE_MAX_TOKENS)..].join(" ")),
                _ => Err(invalid(format!(
                    "Malformed input request: a text is longer than {COHERE_MAX_TOKENS} tokens"
                ))),
            }
        })
        .collect::<Result<Vec<String>, Invalid>>()?;
    let vectors: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| features(t, COHERE_DIMENSIONS, true))
        .collect();
    let input_tokens = texts.iter().map(|t| count_tokens(t)).sum();
    let id = crate::request_id();
    let body = match &body["embedding_types"] {
        Value::Null => json!({
            "id": id,
            "texts": texts,
            "embeddings": vectors,
            "response_type": "embeddings_floats",
        }),
        types => {
            let types = string_list(
                types,
                &["float", "int8", "uint8", "binary", "ubinary"],
                "embedding_types",
            )?;
            let mut by_type = serde_json::Map::new();
            for kind in types {
                let encoded: Vec<Value> = vectors.iter().map(|v| cohere_encode(v, kind)).collect();
                by_type.insert(kind.to_owned(), Value::Array(encoded));
            }
            json!({
                "id": id,
                "texts": texts,
                "embeddings": by_type,
                "response_type": "embeddings_by_type",
            })
        }
    };
    Ok(Embedded { body, input_tokens })
}

/// One vector in one of Cohere's types: int8 and uint8 scale each value to a byte, binary and
/// ubinary pack the signs, eight to a byte (as signed or unsigned bytes).
fn cohere_encode(vector: &[f32], kind: &str) -> Value {
    let scaled = |x: f32| (x * 127.0).round().clamp(-128.0, 127.0) as i32;
    match kind {
        "float" => json!(vector),
        "int8" => json!(vector.iter().map(|&x| scaled(x)).collect::<Vec<_>>()),
        "uint8" => json!(vector.iter().map(|&x| scaled(x) + 128).collect::<Vec<_>>()),
        _ => {
            let packed = vector.chunks(8).map(|bits| {
                bits.iter()
                    .fold(0u8, |byte, &x| (byte << 1) | u8::from(x > 0.0))
            });
            if kind == "binary" {
                json!(packed.map(|b| b as i8).collect::<Vec<_>>())
            } else {
                json!(packed.collect::<Vec<_>>())
            }
        }
    }
}

/// A list of strings each of which is one of `allowed`.
fn string_list<'a>(v: &'a Value, allowed: &[&str], name: &str) -> Result<Vec<&'a str>, Invalid> {
    let list = v
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| invalid(format!("Malformed input request: {name} must be a list")))?;
    list.iter()
        .map(|t| {
            t.as_str().filter(|t| allowed.contains(t)).ok_or_else(|| {
                invalid(format!(
                    "Malformed input request: {name} may hold {}",
                    allowed.join(", ")
                ))
            })
        })
        .collect()
}

/// The text's hashed word and word-pair features in `dimensions` dimensions, unit length when
/// `normalize` (a text without words is all zeros).
fn features(text: &str, dimensions: usize, normalize: bool) -> Vec<f32> {
    let all: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut words: Vec<String> = all
        .iter()
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .map(|w| stem(w).to_owned())
        .collect();
    // A text of common words only is described by them; one without any word by itself, as a
    // real model never answers a zero vector.
    if words.is_empty() {
        words = all;
    }
    if words.is_empty() {
        words.push(text.trim().to_owned());
    }
    let mut vector = vec![0f32; dimensions];
    let mut add = |feature: &[&str], weight: f32| {
        let h = fnv1a(feature);
        let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
        vector[(h % dimensions as u64) as usize] += sign * weight;
    };
    for (i, word) in words.iter().enumerate() {
        add(&[word], 1.0);
        if let Some(next) = words.get(i + 1) {
            add(&[word, next], BIGRAM_WEIGHT);
        }
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if normalize && norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// Words too common to say what a text is about.
const STOPWORDS: [&str; 32] = [
    "a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "how", "i", "in",
    "is", "it", "my", "of", "on", "or", "our", "the", "this", "to", "we", "what", "when", "where",
    "which", "with", "you",
];

/// A crude stem: a plural's `s` (or `es`) dropped, so `orders` and `order` count as one word.
fn stem(word: &str) -> &str {
    match word.len() {
        n if n > 4 && word.ends_with("es") && !word.ends_with("ses") => &word[..n - 2],
        n if n > 3 && word.ends_with('s') && !word.ends_with("ss") => &word[..n - 1],
        _ => word,
    }
}

/// FNV-1a over the words with a separator: the same vectors in every build and every run.
fn fnv1a(words: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, word) in words.iter().enumerate() {
        let sep: &[u8] = if i == 0 { b"" } else { b" " };
        for &b in sep.iter().chain(word.as_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn titan_vector(text: &str) -> Vec<f32> {
        let out = titan(&json!({ "inputText": text, "dimensions": 256 })).unwrap();
        serde_json::from_value(out.body["embedding"].clone()).unwrap()
    }

    #[test]
    fn no_text_gets_a_zero_vector() {
        for text in ["It is what it is.", "---", "}", "the and of"] {
            assert!(titan_vector(text).iter().any(|&x| x != 0.0), "{text:?}");
        }
    }

    #[test]
    fn related_text_ranks_above_unrelated_text() {
        let query = titan_vector("how do I reset my password");
        let related =
            titan_vector("To reset a forgotten password, open Settings and choose reset.");
        let unrelated = titan_vector("Invoices are sent on the first business day of each month.");
        assert!(cosine(&query, &related) > cosine(&query, &unrelated) + 0.1);
        assert_eq!(query, titan_vector("how do I reset my password"));
        let norm: f32 = query.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    #[test]
    fn titan_answers_in_its_format_and_refuses_what_titan_refuses() {
        let out = titan(&json!({
            "inputText": "hello world", "dimensions": 512, "embeddingTypes": ["float", "binary"]
        }))
        .unwrap();
        assert_eq!(out.body["embedding"].as_array().unwrap().len(), 512);
        assert_eq!(
            out.body["embeddingsByType"]["binary"]
                .as_array()
                .unwrap()
                .len(),
            512
        );
        assert_eq!(out.body["inputTextTokenCount"], 2);
        for bad in [
            json!({}),
            json!({ "inputText": "" }),
            json!({ "inputText": "x", "dimensions": 300 }),
            json!({ "inputText": "x", "embeddingTypes": ["int8"] }),
        ] {
            assert!(titan(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cohere_answers_floats_or_each_type_asked_for() {
        let floats = cohere(&json!({ "texts": ["a b", "c"], "input_type": "search_document" }))
            .unwrap()
            .body;
        assert_eq!(floats["response_type"], "embeddings_floats");
        assert_eq!(floats["embeddings"][1].as_array().unwrap().len(), 1024);
        let typed = cohere(&json!({
            "texts": ["a b"], "input_type": "search_query",
            "embedding_types": ["int8", "ubinary"]
        }))
        .unwrap()
        .body;
        assert_eq!(typed["response_type"], "embeddings_by_type");
        assert_eq!(
            typed["embeddings"]["int8"][0].as_array().unwrap().len(),
            1024
        );
        assert_eq!(
            typed["embeddings"]["ubinary"][0].as_array().unwrap().len(),
            128
        );
        let too_many = json!({ "texts": vec!["x"; 97], "input_type": "search_document" });
        assert!(cohere(&too_many).is_err());
        assert!(cohere(&json!({ "texts": ["x"] })).is_err());
        // Over the token limit: refused, unless truncate says which end to drop.
        let long = "w ".repeat(600);
        assert!(cohere(&json!({ "texts": [long], "input_type": "search_document" })).is_err());
        let cut =
            cohere(&json!({ "texts": [long], "input_type": "search_document", "truncate": "END" }))
                .unwrap();
        assert_eq!(cut.input_tokens, COHERE_MAX_TOKENS);
        // Over the character limit: refused whatever truncate says.
        let wide = "x".repeat(COHERE_MAX_CHARS + 1);
        assert!(
            cohere(&json!({ "texts": [wide], "input_type": "search_document", "truncate": "END" }))
                .is_err()
        );
    }
}
