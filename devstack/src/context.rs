//! Collections filled for tests and the demo the way `promptseal context ingest` fills them:
//! chunked, embedded by the Bedrock stand-in, sealed and stored in a stack's context store.

use aws_config::SdkConfig;
use promptseal::context::chunk::{ChunkBudget, split};
use promptseal::context::collection::CollectionId;
use promptseal::context::document::content_hash;
use promptseal::context::embed::{Embedder, EmbeddingModel, Purpose};
use promptseal::envelope::{CachePolicy, Envelope};
use promptseal::store::context::{
    ContextStore, ContextStoreError, DocumentSummary, IngestKeys, NewDocument, VectorBackend,
};

use crate::Resources;

/// The embedding model fixtures use: Titan V2 at its smallest size.
pub const FIXTURE_MODEL: &str = "amazon.titan-embed-text-v2:0";
pub const FIXTURE_DIMENSIONS: u32 = 256;

/// A stack's context store with the keys the operators seal under.
pub struct ContextFixture {
    pub store: ContextStore,
    pub text: Envelope,
    /// The tenant's own key `text` seals under, if it is not the stack's.
    pub tenant_key: Option<String>,
    pub vectors: Envelope,
    pub fingerprints: Envelope,
    /// Where collections it creates keep their vectors.
    pub backend: VectorBackend,
    embedder: Embedder,
}

impl ContextFixture {
    /// The store of `resources` (template.yaml's, or a tenant's own from tenant-context.yaml);
    /// embeddings from the Bedrock runtime the environment points at.
    pub async fn new(config: &SdkConfig, resources: &Resources) -> Self {
        let kms = aws_sdk_kms::Client::new(config);
        let envelope = |logical_id: &str| {
            Envelope::new(
                kms.clone(),
                resources.key_alias(logical_id),
                CachePolicy::default(),
            )
        };
        // Endpoint from AWS_ENDPOINT_URL_BEDROCK_RUNTIME, as the functions find it.
        let bedrock = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self {
            store: ContextStore::connect(
                config,
                resources.table("ContextTable"),
                resources.bucket("VectorBucket"),
                resources
                    .buckets
                    .get("VectorIndexBucket")
                    .map(String::as_str),
            ),
            text: envelope("ContextKey"),
            tenant_key: None,
            vectors: envelope("VectorKey"),
            // A tenant's own stack keeps no ISV document, and has no fingerprint key: its
            // context key stands in, never used.
            fingerprints: envelope(match resources.key_aliases.contains_key("FingerprintKey") {
                true => "FingerprintKey",
                false => "ContextKey",
            }),
            backend: VectorBackend::Memory,
            embedder: Embedder::new(
                aws_sdk_bedrockruntime::Client::new(&bedrock),
                EmbeddingModel::new(FIXTURE_MODEL, Some(FIXTURE_DIMENSIONS))
                    .expect("a supported model"),
            ),
        }
    }

    /// Ingests `text` as document `name` of `collection`.
    pub async fn ingest(
        &self,
        collection: &CollectionId,
        name: &str,
        text: &str,
    ) -> Result<DocumentSummary, ContextStoreError> {
        self.ingest_sealing_vectors_with(collection, name, text, &self.vectors)
            .await
    }

    /// Ingests with the vectors sealed under `vectors` (a key that fails, to cut an ingestion
    /// short).
    pub async fn ingest_sealing_vectors_with(
        &self,
        collection: &CollectionId,
        name: &str,
        text: &str,
        vectors: &Envelope,
    ) -> Result<DocumentSummary, ContextStoreError> {
        let chunks = split(text, ChunkBudget::default());
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        let embedded = self
            .embedder
            .embed(&texts, Purpose::Document)
            .await
            .expect("the stand-in embeds");
        self.store
            .put_document(
                collection,
                self.embedder.model(),
                Some(self.backend),
                NewDocument {
                    name,
                    sha256: &content_hash(text),
                    bytes: text.len() as u64,
                    chunks: &chunks,
                    vectors: &embedded.vectors,
                },
                IngestKeys {
                    text: &self.text,
                    tenant_key: self.tenant_key.as_deref(),
                    vectors,
                    fingerprints: &self.fingerprints,
                },
            )
            .await
    }

    /// The embedder fixtures use, for queries.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }
}
