//! Embedding text through Bedrock `InvokeModel`, in the formats of the two supported model
//! families: Amazon Titan Text Embeddings V2 (the default; one text per call, 256, 512 or 1,024
//! dimensions, unit length) and Cohere Embed v3 (up to 96 texts per call, 1,024 dimensions, with
//! separate input types for documents and queries). Every vector is checked before it is used:
//! the dimensions asked for, finite values, not zero.

use aws_sdk_bedrockruntime::primitives::Blob;
use serde::Deserialize;
use serde_json::json;

/// The default embedding model.
pub const DEFAULT_MODEL: &str = "amazon.titan-embed-text-v2:0";
/// Titan V2's accepted dimensions.
pub const TITAN_DIMENSIONS: [u32; 3] = [256, 512, 1024];
const COHERE_DIMENSIONS: u32 = 1024;
const COHERE_BATCH: usize = 96;

/// A supported embedding model and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbeddingModel {
    Titan { model_id: String, dimensions: u32 },
    Cohere { model_id: String },
}

/// What the text is: a document to store, or a query to find documents with (Cohere embeds the
/// two differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Document,
    Query,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "embedding model {0:?} is not supported: use amazon.titan-embed-text-v2:0 or a \
         cohere.embed-*-v3 model"
    )]
    UnsupportedModel(String),
    #[error("{model} embeds in {allowed} dimensions, not {asked}")]
    Dimensions {
        model: String,
        asked: u32,
        allowed: String,
    },
    #[error("the embedding model failed")]
    Model(#[source] Box<aws_sdk_bedrockruntime::Error>),
    #[error("the embedding model answered with {0}")]
    Malformed(&'static str),
}

impl EmbeddingModel {
    /// The model `model_id` with `dimensions` (the model's default when `None`).
    pub fn new(model_id: &str, dimensions: Option<u32>) -> Result<Self, EmbedError> {
        let dimensions_error = |allowed: &str, asked| EmbedError::Dimensions {
            model: model_id.to_owned(),
            asked,
            allowed: allowed.to_owned(),
        };
        if model_id.starts_with("amazon.titan-embed-text-v2") {
            let dimensions = dimensions.unwrap_or(1024);
            if !TITAN_DIMENSIONS.contains(&dimensions) {
                return Err(dimensions_error("256, 512 or 1024", dimensions));
            }
            return Ok(Self::Titan {
                model_id: model_id.to_owned(),
                dimensions,
            });
        }
        if model_id.starts_with("cohere.embed-") && model_id.contains("-v3") {
            return match dimensions {
                None | Some(COHERE_DIMENSIONS) => Ok(Self::Cohere {
                    model_id: model_id.to_owned(),
                }),
                Some(asked) => Err(dimensions_error("1024", asked)),
            };
        }
        Err(EmbedError::UnsupportedModel(model_id.to_owned()))
    }

    pub fn model_id(&self) -> &str {
        match self {
            Self::Titan { model_id, .. } | Self::Cohere { model_id } => model_id,
        }
    }

    pub fn dimensions(&self) -> u32 {
        match self {
            Self::Titan { dimensions, .. } => *dimensions,
            Self::Cohere { .. } => COHERE_DIMENSIONS,
        }
    }
}

/// Vectors for some texts, in their order, and the input tokens the model counted (Titan says;
/// Cohere on Bedrock does not). Its `Debug` shows sizes: text can partly be rebuilt from vectors.
#[derive(Clone, PartialEq)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub input_tokens: Option<u64>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("vectors", &self.vectors.len())
            .field("input_tokens", &self.input_tokens)
            .finish()
    }
}

/// An embedding model behind a Bedrock runtime client.
#[derive(Clone)]
pub struct Embedder {
    bedrock: aws_sdk_bedrockruntime::Client,
    model: EmbeddingModel,
}

#[derive(Deserialize)]
struct TitanResponse {
    embedding: Vec<f32>,
    #[serde(rename = "inputTextTokenCount")]
    input_tokens: u64,
}

#[derive(Deserialize)]
struct CohereResponse {
    embeddings: Vec<Vec<f32>>,
}

impl Embedder {
    pub fn new(bedrock: aws_sdk_bedrockruntime::Client, model: EmbeddingModel) -> Self {
        Self { bedrock, model }
    }

    pub fn model(&self) -> &EmbeddingModel {
        &self.model
    }

    /// One vector per text, in order.
    pub async fn embed(&self, texts: &[&str], purpose: Purpose) -> Result<Embedded, EmbedError> {
        let mut out = Embedded {
            vectors: Vec::with_capacity(texts.len()),
            input_tokens: None,
        };
        match &self.model {
            EmbeddingModel::Titan { dimensions, .. } => {
                for text in texts {
                    let body = json!({
                        "inputText": text,
                        "dimensions": dimensions,
                        "normalize": true,
                    });
                    let response: TitanResponse = self.invoke(body).await?;
                    out.vectors.push(response.embedding);
                    *out.input_tokens.get_or_insert(0) += response.input_tokens;
                }
            }
            EmbeddingModel::Cohere { .. } => {
                let input_type = match purpose {
                    Purpose::Document => "search_document",
                    Purpose::Query => "search_query",
                };
                for batch in texts.chunks(COHERE_BATCH) {
                    let body = json!({
                        "texts": batch,
                        "input_type": input_type,
                        // A text over the model's limit is an error, never silently cut.
                        "truncate": "NONE",
                    });
                    let response: CohereResponse = self.invoke(body).await?;
                    if response.embeddings.len() != batch.len() {
                        return Err(EmbedError::Malformed(
                            "a vector count unlike the text count",
                        ));
                    }
                    out.vectors.extend(response.embeddings);
                }
            }
        }
        let dimensions = self.model.dimensions() as usize;
        if out.vectors.iter().any(|v| {
            v.len() != dimensions || !v.iter().all(|x| x.is_finite()) || v.iter().all(|&x| x == 0.0)
        }) {
            return Err(EmbedError::Malformed(
                "vectors of the wrong size, zero or not finite",
            ));
        }
        Ok(out)
    }

    /// One `InvokeModel` call, its body parsed.
    async fn invoke<T: serde::de::DeserializeOwned>(
        &self,
        body: serde_json::Value,
    ) -> Result<T, EmbedError> {
        let out = self
            .bedrock
            .invoke_model()
            .model_id(self.model.model_id())
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body.to_string()))
            .send()
            .await
            .map_err(|e| EmbedError::Model(Box::new(e.into())))?;
        serde_json::from_slice(out.body().as_ref())
            .map_err(|_| EmbedError::Malformed("a body not in the model's format"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_and_dimensions_are_checked() {
        assert_eq!(
            EmbeddingModel::new(DEFAULT_MODEL, None)
                .unwrap()
                .dimensions(),
            1024
        );
        assert_eq!(
            EmbeddingModel::new(DEFAULT_MODEL, Some(256))
                .unwrap()
                .dimensions(),
            256
        );
        assert!(matches!(
            EmbeddingModel::new(DEFAULT_MODEL, Some(300)),
            Err(EmbedError::Dimensions { asked: 300, .. })
        ));
        assert_eq!(
            EmbeddingModel::new("cohere.embed-english-v3", None)
                .unwrap()
                .dimensions(),
            1024
        );
        assert!(EmbeddingModel::new("cohere.embed-english-v3", Some(512)).is_err());
        assert!(matches!(
            EmbeddingModel::new("amazon.titan-embed-text-v1", None),
            Err(EmbedError::UnsupportedModel(_))
        ));
    }
}
