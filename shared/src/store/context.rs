//! The context store: collections of sealed chunks in DynamoDB and their vectors, sealed in S3
//! or kept by S3 Vectors.
//!
//! One partition per collection (`isv/NAME` or `tenant/ID/NAME`) holds a `meta` item (the
//! embedding model, where the vectors are kept, a version that every change raises, and each
//! document's committed generation), one `doc/NAME` item per document, and one `chunk/ID` item
//! per chunk (its text sealed under the context key, bound to owner, collection, document
//! generation and index). A collection's vectors are kept one of two ways ([`VectorBackend`]):
//! each document generation's as one S3 object sealed under the vector key, loaded into memory
//! to be searched; or in an S3 Vectors index of the collection's own, searched by the service.
//!
//! A document is ingested as a new generation: chunks and vectors are written first, invisible,
//! and one transaction then makes the generation the document's (the `doc` item) and the
//! collection's (the `meta` item). An interrupted ingestion leaves only an uncommitted
//! generation, which the next ingestion of that document removes; the generation it replaced is
//! removed once the new one is committed.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::context::chunk::Chunk;
use crate::context::collection::{
    ChunkId, CollectionId, DocumentGeneration, DocumentKey, MalformedSegment, Owner,
    decode_segment, encode_segment,
};
use crate::context::embed::EmbeddingModel;
use crate::context::search::{IndexError, VectorIndex};
use crate::envelope::{Envelope, EnvelopeError, Sealed};
use crate::leak::{Fingerprints, LeakSettings};
use crate::store::dynamo::{self, DynamoError, Item, MalformedItem, n, s};
use crate::store::vector_index::{MAX_TOP_K, S3VectorIndex, VectorIndexError};

const META: &str = "meta";
const DOC_PREFIX: &str = "doc/";
const CHUNK_PREFIX: &str = "chunk/";
/// Per document, the counter that numbers its ingestions and the key it keeps.
const ATTEMPT_PREFIX: &str = "attempt/";
/// How old a generation that was never committed must be before another ingestion of its
/// document removes it (younger, it may be another ingestion still at work).
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// DynamoDB's limits: items per BatchWriteItem and keys per BatchGetItem.
const WRITE_BATCH: usize = 25;
const GET_BATCH: usize = 100;
/// Segments a load fetches and opens at once.
const SEGMENT_LOADS: usize = 16;
/// Sends of one batch before items DynamoDB keeps leaving unprocessed fail the write.
const WRITE_ATTEMPTS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum ContextStoreError {
    #[error("collection {0} not found")]
    CollectionNotFound(String),
    #[error("collection {collection} has no document {name:?}")]
    DocumentNotFound { collection: String, name: String },
    #[error("collection {collection} is embedded with {stored}; it cannot take vectors of {asked}")]
    ModelMismatch {
        collection: String,
        stored: String,
        asked: String,
    },
    #[error("document {name:?} was changed by someone else at the same time; try again")]
    Conflict { name: String },
    #[error("a document with no chunks cannot be stored")]
    NoChunks,
    #[error("DynamoDB kept leaving writes unprocessed; try again")]
    Throttled,
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    #[error("S3 {operation} failed")]
    S3 {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Malformed(#[from] MalformedItem),
    #[error(transparent)]
    Segment(#[from] MalformedSegment),
    #[error("stored vectors do not form an index: {0}")]
    Index(#[from] IndexError),
    #[error("collection {collection} keeps its vectors in {stored}, not {asked}")]
    BackendMismatch {
        collection: String,
        stored: VectorBackend,
        asked: VectorBackend,
    },
    /// A tenant collection's text is sealed under one key: the tenant's own, or the store's.
    #[error(
        "collection {collection} is sealed under {stored}, and the tenant's documents now go under \
         {asked}: delete the collection and ingest it again"
    )]
    KeyMismatch {
        collection: String,
        stored: String,
        asked: String,
    },
    #[error("collection {0} keeps its vectors in S3 Vectors, and no vector bucket is configured")]
    NoVectorIndex(String),
    #[error(
        "collection {0} is being deleted; finish with `context delete` before using the name again"
    )]
    BeingDeleted(String),
    #[error(transparent)]
    VectorIndex(#[from] VectorIndexError),
}

impl ContextStoreError {
    /// A stable code for scripts and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::CollectionNotFound(_) => "collection_not_found",
            Self::DocumentNotFound { .. } => "document_not_found",
            Self::ModelMismatch { .. } => "model_mismatch",
            Self::Conflict { .. } => "conflict",
            Self::NoChunks => "empty",
            Self::Dynamo(_) | Self::S3 { .. } | Self::VectorIndex(_) | Self::Throttled => {
                "store_unavailable"
            }
            Self::BackendMismatch { .. } => "backend_mismatch",
            Self::KeyMismatch { .. } => "key_mismatch",
            Self::NoVectorIndex(_) => "vector_index_not_configured",
            Self::BeingDeleted(_) => "collection_being_deleted",
            Self::Envelope(EnvelopeError::Integrity) => "sealed_data_invalid",
            Self::Envelope(_) => "key_unavailable",
            Self::Malformed(_) | Self::Segment(_) | Self::Index(_) => "store_corrupt",
        }
    }

    fn s3(operation: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::S3 {
            operation,
            source: Box::new(e),
        }
    }
}

/// Where a collection's vectors are kept, chosen when it is created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VectorBackend {
    /// Sealed segments in the vector bucket, loaded and searched in retrieve-context's memory.
    #[default]
    Memory,
    /// An S3 Vectors index of the collection's own, searched by the service.
    S3Vectors,
}

impl VectorBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::S3Vectors => "s3-vectors",
        }
    }
}

impl std::fmt::Display for VectorBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for VectorBackend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "memory" => Ok(Self::Memory),
            "s3-vectors" => Ok(Self::S3Vectors),
            other => Err(format!("{other:?} is not memory or s3-vectors")),
        }
    }
}

/// A collection as `context list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CollectionSummary {
    pub owner: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub collection: String,
    pub model: String,
    pub dimensions: u32,
    pub backend: VectorBackend,
    /// Raised by every change: a warm reader reloads when it moves.
    pub version: u64,
    pub documents: usize,
    pub chunks: u64,
    pub updated_at: String,
}

/// One document of a collection, as `context show` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentSummary {
    pub name: String,
    pub document: String,
    pub generation: u32,
    pub chunks: u32,
    pub bytes: u64,
    /// Of the file's bytes, lowercase hex: an unchanged file is not ingested again.
    pub sha256: String,
    pub ingested_at: String,
}

/// A collection's committed state: its model and each document's generation and chunk count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionState {
    /// Random, given when the collection is created: a collection deleted and created again is
    /// another incarnation, whatever its version.
    pub incarnation: String,
    pub model: String,
    pub dimensions: u32,
    pub backend: VectorBackend,
    /// The tenant's own key its text is sealed under (none: the store's context key).
    pub tenant_key: Option<String>,
    pub version: u64,
    pub documents: BTreeMap<DocumentKey, (u32, u32)>,
    pub updated_at: String,
    /// Its deletion has begun: nothing more is committed to it, and nothing is read from it.
    pub deleting: bool,
}

impl CollectionState {
    /// Refuses vectors of a model (or size) other than the collection's (one collection, one
    /// embedding space), a backend other than its own, and text under another key than its own
    /// (`tenant_key`: the tenant's own; none: the store's), which invoke could not open.
    pub fn accepts(
        &self,
        collection: &CollectionId,
        model: &EmbeddingModel,
        backend: Option<VectorBackend>,
        tenant_key: Option<&str>,
    ) -> Result<(), ContextStoreError> {
        if self.tenant_key.as_deref() != tenant_key {
            let key = |k: Option<&str>| k.unwrap_or("the store's context key").to_owned();
            return Err(ContextStoreError::KeyMismatch {
                collection: collection.path(),
                stored: key(self.tenant_key.as_deref()),
                asked: key(tenant_key),
            });
        }
        if self.model != model.model_id() || self.dimensions != model.dimensions() {
            return Err(ContextStoreError::ModelMismatch {
                collection: collection.path(),
                stored: format!("{} ({} dimensions)", self.model, self.dimensions),
                asked: format!("{} ({} dimensions)", model.model_id(), model.dimensions()),
            });
        }
        match backend.filter(|asked| *asked != self.backend) {
            Some(asked) => Err(ContextStoreError::BackendMismatch {
                collection: collection.path(),
                stored: self.backend,
                asked,
            }),
            None => Ok(()),
        }
    }

    /// Whether a chunk belongs to a generation the collection lists (a search of S3 Vectors
    /// may also find a generation not committed yet, or replaced and not removed yet).
    pub fn holds(&self, chunk: &ChunkId) -> bool {
        self.documents
            .get(&chunk.document.document)
            .is_some_and(|&(g, count)| g == chunk.document.generation && chunk.index < count)
    }

    /// Whether `doc` is the generation the collection lists (a document whose commit was cut
    /// short, or whose collection was deleted halfway, is not).
    pub fn lists(&self, doc: &DocumentSummary) -> bool {
        doc.document
            .parse()
            .is_ok_and(|key| self.documents.get(&key).map(|&(g, _)| g) == Some(doc.generation))
    }
}

/// The plaintext of one chunk as sealed: its heading trail and its text.
#[derive(Serialize, Deserialize)]
pub struct ChunkText {
    pub section: String,
    pub text: String,
}

impl std::fmt::Debug for ChunkText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkText")
            .field("chars", &self.text.chars().count())
            .finish_non_exhaustive()
    }
}

/// A collection's vectors, loaded: the index and, position for position, the chunk ids.
#[derive(Debug)]
pub struct LoadedCollection {
    pub incarnation: String,
    pub version: u64,
    /// The model the vectors come from, and their size: queries are embedded alike.
    pub model: String,
    pub dimensions: u32,
    pub chunks: Vec<ChunkId>,
    pub index: VectorIndex,
}

impl LoadedCollection {
    /// The `k` chunks nearest `query` with a cosine of at least `min_score`, best first.
    pub fn search(&self, query: &[f32], k: usize, min_score: f32) -> Vec<(ChunkId, f32)> {
        self.index
            .search(query, k, min_score)
            .into_iter()
            .map(|hit| (self.chunks[hit.index], hit.score))
            .collect()
    }
}

/// The keys a document is sealed under while it is ingested.
pub struct IngestKeys<'a> {
    pub text: &'a Envelope,
    /// The tenant's own key `text` seals under, recorded with a new collection; an existing
    /// collection under another key is refused (`key_mismatch`).
    pub tenant_key: Option<&'a str>,
    pub vectors: &'a Envelope,
    /// Seals the fingerprints of ISV documents, for the leak guard.
    pub fingerprints: &'a Envelope,
}

/// A document to store: its name in the collection, the hash and size of its file, its chunks
/// and their vectors (same order).
pub struct NewDocument<'a> {
    pub name: &'a str,
    pub sha256: &'a str,
    pub bytes: u64,
    pub chunks: &'a [Chunk],
    pub vectors: &'a [Vec<f32>],
}

/// The context table and the vector bucket. Which calls succeed is up to the caller's role:
/// the CLI writes, retrieve-context reads vectors and sealed chunks, invoke opens chunks.
#[derive(Clone)]
pub struct ContextStore {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    s3: aws_sdk_s3::Client,
    bucket: String,
    vector_index: Option<S3VectorIndex>,
    stale_after: std::time::Duration,
}

fn delete_request(collection: &CollectionId, sk: String) -> WriteRequest {
    WriteRequest::builder()
        .delete_request(
            DeleteRequest::builder()
                .set_key(Some(key(collection, sk)))
                .build()
                .expect("key set"),
        )
        .build()
}

fn chunk_sk(id: &ChunkId) -> String {
    format!("{CHUNK_PREFIX}{id}")
}

fn key(collection: &CollectionId, sk: String) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), s(collection.path())),
        ("sk".to_owned(), s(sk)),
    ])
}

/// A sealed object in one S3 body: the wrapped key's length (u16 LE), the wrapped key, the
/// ciphertext.
fn sealed_body(sealed: &Sealed) -> Vec<u8> {
    let len = u16::try_from(sealed.wrapped_key.len()).expect("a wrapped data key is small");
    let mut out = Vec::with_capacity(2 + sealed.wrapped_key.len() + sealed.ciphertext.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&sealed.wrapped_key);
    out.extend_from_slice(&sealed.ciphertext);
    out
}

fn read_sealed_body(body: &[u8]) -> Result<Sealed, MalformedSegment> {
    let (len, rest) = body.split_at_checked(2).ok_or(MalformedSegment)?;
    let len = u16::from_le_bytes([len[0], len[1]]) as usize;
    let (wrapped_key, ciphertext) = rest.split_at_checked(len).ok_or(MalformedSegment)?;
    Ok(Sealed {
        ciphertext: ciphertext.to_vec(),
        wrapped_key: wrapped_key.to_vec(),
    })
}

impl ContextStore {
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        s3: aws_sdk_s3::Client,
        bucket: impl Into<String>,
    ) -> Self {
        Self {
            ddb,
            table: table.into(),
            s3,
            bucket: bucket.into(),
            vector_index: None,
            stale_after: STALE_AFTER,
        }
    }

    /// The store on `sdk`'s clients: the context table, the vector bucket, and the S3 Vectors
    /// bucket (name or ARN) if collections may keep their vectors there.
    pub fn connect(
        sdk: &aws_types::SdkConfig,
        table: impl Into<String>,
        bucket: impl Into<String>,
        vector_index: Option<&str>,
    ) -> Self {
        let store = Self::new(
            aws_sdk_dynamodb::Client::new(sdk),
            table,
            aws_sdk_s3::Client::new(sdk),
            bucket,
        );
        match vector_index {
            Some(bucket) => store.with_vector_index(S3VectorIndex::new(
                aws_sdk_s3vectors::Client::new(sdk),
                bucket,
            )),
            None => store,
        }
    }

    /// The S3 Vectors bucket of collections that keep their vectors there.
    pub fn with_vector_index(mut self, index: S3VectorIndex) -> Self {
        self.vector_index = Some(index);
        self
    }

    fn vector_index(&self, collection: &CollectionId) -> Result<&S3VectorIndex, ContextStoreError> {
        self.vector_index
            .as_ref()
            .ok_or_else(|| ContextStoreError::NoVectorIndex(collection.path()))
    }

    /// How old an uncommitted generation must be before it is cleaned up (tests: zero).
    pub fn with_stale_after(mut self, stale_after: std::time::Duration) -> Self {
        self.stale_after = stale_after;
        self
    }

    /// Numbers this ingestion of document `name`: every attempt gets a generation of its own
    /// (two ingestions at once never write the same chunk ids), under the key the document
    /// keeps from its first attempt.
    async fn claim(
        &self,
        collection: &CollectionId,
        name: &str,
    ) -> Result<DocumentGeneration, ContextStoreError> {
        let out = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(collection, format!("{ATTEMPT_PREFIX}{name}"))))
            .update_expression(
                "SET document = if_not_exists(document, :document) ADD attempts :one",
            )
            .expression_attribute_values(":document", s(DocumentKey::random().to_string()))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| DynamoError::new("UpdateItem", e))?;
        let item = out.attributes.unwrap_or_default();
        Ok(DocumentGeneration {
            document: dynamo::string(&item, "document")?
                .parse()
                .map_err(|()| MalformedItem("document"))?,
            generation: dynamo::number(&item, "attempts")?,
        })
    }

    fn segment_key(collection: &CollectionId, doc: &DocumentGeneration) -> String {
        format!("{}/{}.{}", collection.path(), doc.document, doc.generation)
    }

    /// The collection's committed state, or `None` if it has none.
    pub async fn state(
        &self,
        collection: &CollectionId,
    ) -> Result<Option<CollectionState>, ContextStoreError> {
        let item = self.item(collection, META.to_owned()).await?;
        item.as_ref().map(read_state).transpose()
    }

    /// Every collection, the ISV's and every tenant's.
    pub async fn list(&self) -> Result<Vec<CollectionSummary>, ContextStoreError> {
        let items = dynamo::scan_all(
            self.ddb
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :meta")
                .expression_attribute_values(":meta", s(META)),
        )
        .await?;
        let mut out = items
            .iter()
            .map(|item| {
                let collection = collection_of(item)?;
                Ok(summary(&collection, &read_state(item)?))
            })
            .collect::<Result<Vec<_>, ContextStoreError>>()?;
        out.sort_by(|a, b| {
            (a.owner, &a.tenant, &a.collection).cmp(&(b.owner, &b.tenant, &b.collection))
        });
        Ok(out)
    }

    /// A collection's summary and its documents, by name.
    pub async fn show(
        &self,
        collection: &CollectionId,
    ) -> Result<(CollectionSummary, Vec<DocumentSummary>), ContextStoreError> {
        let state = self
            .state(collection)
            .await?
            .ok_or_else(|| ContextStoreError::CollectionNotFound(collection.path()))?;
        let items = self.partition(collection, DOC_PREFIX).await?;
        let documents = items
            .iter()
            .map(read_document)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((summary(collection, &state), documents))
    }

    /// One document's summary, if the collection has it.
    pub async fn document(
        &self,
        collection: &CollectionId,
        name: &str,
    ) -> Result<Option<DocumentSummary>, ContextStoreError> {
        let item = self.item(collection, format!("{DOC_PREFIX}{name}")).await?;
        Ok(item.as_ref().map(read_document).transpose()?)
    }

    /// One item of the collection's partition, read consistently.
    async fn item(
        &self,
        collection: &CollectionId,
        sk: String,
    ) -> Result<Option<Item>, ContextStoreError> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(collection, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::new("GetItem", e))?;
        Ok(out.item)
    }

    async fn partition(
        &self,
        collection: &CollectionId,
        prefix: &str,
    ) -> Result<Vec<Item>, ContextStoreError> {
        let query = self
            .ddb
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(collection.path()))
            .consistent_read(true);
        // The whole partition, or the items whose sort key starts with `prefix`.
        let query = match prefix {
            "" => query.key_condition_expression("pk = :pk"),
            prefix => query
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", s(prefix)),
        };
        Ok(dynamo::query_all(query).await?)
    }

    /// Stores a document as its next generation and commits it (see the module's notes). The
    /// chunk texts are sealed under one data key of `keys.text`, the vectors under one of
    /// `keys.vectors`; an ISV document's fingerprints are sealed beside it.
    /// `backend` is where a new collection keeps its vectors (by default in memory); an existing
    /// one keeps its own, and naming another is refused.
    pub async fn put_document(
        &self,
        collection: &CollectionId,
        model: &EmbeddingModel,
        backend: Option<VectorBackend>,
        doc: NewDocument<'_>,
        keys: IngestKeys<'_>,
    ) -> Result<DocumentSummary, ContextStoreError> {
        if doc.chunks.is_empty() {
            return Err(ContextStoreError::NoChunks);
        }
        assert_eq!(doc.chunks.len(), doc.vectors.len(), "one vector per chunk");
        if backend == Some(VectorBackend::S3Vectors) {
            self.vector_index(collection)?;
        }
        let state = self
            .open_collection(collection, model, backend, keys.tenant_key)
            .await?;
        if state.backend == VectorBackend::S3Vectors {
            // Before anything of the document is written: an ingestion cut short never leaves
            // chunks whose clean-up would look for an index that does not exist.
            self.vector_index(collection)?
                .create(collection, &state.incarnation, state.dimensions)
                .await?;
        }
        let previous = self.document(collection, doc.name).await?;
        let generation = self.claim(collection, doc.name).await?;
        // What superseded or interrupted ingestions of this document left behind: generations
        // older than the committed one, and uncommitted ones old enough not to be at work.
        let committed = previous.as_ref().map_or(0, |p| p.generation);
        let stale = self.stale_after;
        self.remove_generations(collection, &state, generation.document, |g, age| {
            g < committed || (g > committed && g != generation.generation && age >= stale)
        })
        .await?;

        let count = u32::try_from(doc.chunks.len()).expect("a document has fewer than 2^32 chunks");
        self.write_chunks(collection, generation, doc.chunks, keys.text)
            .await?;
        match state.backend {
            VectorBackend::Memory => {
                let vectors = keys
                    .vectors
                    .seal(
                        &encode_segment(model.dimensions(), doc.vectors),
                        &collection.vector_context(&generation),
                    )
                    .await?;
                self.s3
                    .put_object()
                    .bucket(&self.bucket)
                    .key(Self::segment_key(collection, &generation))
                    .body(ByteStream::from(sealed_body(&vectors)))
                    .send()
                    .await
                    .map_err(|e| ContextStoreError::s3("PutObject", e))?;
            }
            VectorBackend::S3Vectors => {
                let ids: Vec<ChunkId> = (0..count)
                    .map(|index| ChunkId {
                        document: generation,
                        index,
                    })
                    .collect();
                self.vector_index(collection)?
                    .put(collection, &state.incarnation, &ids, doc.vectors)
                    .await?;
            }
        }

        let now = dynamo::now_rfc3339();
        let mut doc_item = key(collection, format!("{DOC_PREFIX}{}", doc.name));
        doc_item.extend([
            ("name".to_owned(), s(doc.name)),
            ("document".to_owned(), s(generation.document.to_string())),
            ("generation".to_owned(), n(generation.generation)),
            ("chunks".to_owned(), n(count)),
            ("bytes".to_owned(), n(doc.bytes)),
            ("sha256".to_owned(), s(doc.sha256)),
            ("ingested_at".to_owned(), s(&now)),
        ]);
        if collection.owner == Owner::Isv {
            // The headings are sealed with each chunk and placed in the prompt with it.
            let fingerprints = Fingerprints::of_template(
                doc.chunks
                    .iter()
                    .flat_map(|c| [c.section.as_str(), c.text.as_str()]),
                LeakSettings::default(),
                crate::random_bytes(),
            );
            let sealed = keys
                .fingerprints
                .seal(
                    &fingerprints.to_bytes(),
                    &collection.fingerprint_context(&generation),
                )
                .await?;
            doc_item.extend(
                dynamo::sealed_attributes(&sealed).map(|(name, v)| (format!("fp_{name}"), v)),
            );
        }
        let committed = self
            .commit(
                collection, &state, doc.name, &previous, doc_item, generation, count, &now,
            )
            .await;
        let landed = match &committed {
            Ok(()) => true,
            Err(ContextStoreError::Conflict { .. }) => false,
            // An answer lost in transit: the transaction may have committed; the document says.
            Err(_) => self.document(collection, doc.name).await.map_or(true, |d| {
                d.is_some_and(|d| {
                    d.generation == generation.generation
                        && d.document == generation.document.to_string()
                })
            }),
        };
        if !landed && state.backend == VectorBackend::S3Vectors {
            // Never to be committed: its vectors go now, not when the document is ingested again
            // (which may never happen, the collection deleted meanwhile). Its chunk items stay
            // for that ingestion to remove, naming nothing searchable.
            let ids: Vec<ChunkId> = (0..count)
                .map(|index| ChunkId {
                    document: generation,
                    index,
                })
                .collect();
            let _ = self
                .vector_index(collection)?
                .delete(collection, &state.incarnation, &ids)
                .await;
        }
        committed?;
        if previous.is_some() {
            // Replaced: readers move to the new generation as they see the version change. Any
            // older attempt can no longer commit.
            self.remove_generations(collection, &state, generation.document, |g, _| {
                g < generation.generation
            })
            .await?;
        }
        self.document(collection, doc.name)
            .await?
            .ok_or_else(|| ContextStoreError::Conflict {
                name: doc.name.to_owned(),
            })
    }

    /// The collection's state, its meta item created first if it has none: its model, its
    /// backend (`backend`, or memory), its tenant's key and a new incarnation. Refuses another
    /// model, backend or key.
    async fn open_collection(
        &self,
        collection: &CollectionId,
        model: &EmbeddingModel,
        backend: Option<VectorBackend>,
        tenant_key: Option<&str>,
    ) -> Result<CollectionState, ContextStoreError> {
        // Twice at most: a collection created by someone else meanwhile is read and checked.
        for _ in 0..2 {
            if let Some(state) = self.state(collection).await? {
                if state.deleting {
                    return Err(ContextStoreError::BeingDeleted(collection.path()));
                }
                state.accepts(collection, model, backend, tenant_key)?;
                return Ok(state);
            }
            let state = CollectionState {
                incarnation: crate::random_hex::<8>(),
                model: model.model_id().to_owned(),
                dimensions: model.dimensions(),
                backend: backend.unwrap_or_default(),
                tenant_key: tenant_key.map(str::to_owned),
                version: 0,
                documents: BTreeMap::new(),
                updated_at: dynamo::now_rfc3339(),
                deleting: false,
            };
            let mut item = key(collection, META.to_owned());
            item.extend([
                ("incarnation".to_owned(), s(&state.incarnation)),
                ("model".to_owned(), s(&state.model)),
                ("dimensions".to_owned(), n(state.dimensions)),
                ("backend".to_owned(), s(state.backend.as_str())),
                ("version".to_owned(), n(0)),
                ("documents".to_owned(), AttributeValue::M(HashMap::new())),
                ("updated_at".to_owned(), s(&state.updated_at)),
            ]);
            if let Some(key) = &state.tenant_key {
                item.insert("tenant_key".to_owned(), s(key));
            }
            let created = self
                .ddb
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            match created {
                Ok(_) => return Ok(state),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(DynamoError::new("PutItem", e).into()),
            }
        }
        Err(ContextStoreError::Conflict {
            name: collection.path(),
        })
    }

    async fn write_chunks(
        &self,
        collection: &CollectionId,
        generation: DocumentGeneration,
        chunks: &[Chunk],
        text: &Envelope,
    ) -> Result<(), ContextStoreError> {
        let sealer = text.data_key(&collection.text_context(&generation)).await?;
        let written_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let requests = chunks.iter().enumerate().map(|(i, chunk)| {
            let id = ChunkId {
                document: generation,
                index: i as u32,
            };
            let plaintext = Zeroizing::new(
                serde_json::to_vec(&ChunkText {
                    section: chunk.section.clone(),
                    text: chunk.text.clone(),
                })
                .expect("strings always serialise"),
            );
            let sealed = sealer.seal(&plaintext, &collection.chunk_context(&id));
            let mut item = key(collection, chunk_sk(&id));
            item.extend(dynamo::sealed_attributes(&sealed).map(|(k, v)| (k.to_owned(), v)));
            item.insert("written_at".to_owned(), n(written_at));
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .expect("item set"),
                )
                .build()
        });
        self.batch_write(requests.collect()).await
    }

    /// Writes (or deletes) items 25 at a time, sending again what DynamoDB left unprocessed.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), ContextStoreError> {
        for batch in requests.chunks(WRITE_BATCH) {
            let mut pending = batch.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                let out = self
                    .ddb
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| DynamoError::new("BatchWriteItem", e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                attempt += 1;
                if !pending.is_empty() {
                    if attempt == WRITE_ATTEMPTS {
                        return Err(ContextStoreError::Throttled);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
            }
        }
        Ok(())
    }

    /// Makes a stored generation the document's and the collection's.
    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        collection: &CollectionId,
        state: &CollectionState,
        name: &str,
        previous: &Option<DocumentSummary>,
        doc_item: Item,
        generation: DocumentGeneration,
        chunks: u32,
        now: &str,
    ) -> Result<(), ContextStoreError> {
        let doc_put = match previous {
            None => Put::builder().condition_expression("attribute_not_exists(pk)"),
            Some(p) => Put::builder()
                .condition_expression("generation = :previous")
                .expression_attribute_values(":previous", n(p.generation)),
        }
        .table_name(&self.table)
        .set_item(Some(doc_item))
        .build()
        .expect("table and item set");
        let entry = AttributeValue::M(HashMap::from([
            ("generation".to_owned(), n(generation.generation)),
            ("chunks".to_owned(), n(chunks)),
        ]));
        // The commit: the document names its new generation (unless someone else changed it
        // since it was read) and the collection lists it, its version raised, in one transaction
        // (unless the collection was deleted meanwhile, or deleted and made again).
        let list = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(collection, META.to_owned())))
            .update_expression("SET documents.#doc = :entry, updated_at = :now ADD version :one")
            .condition_expression("incarnation = :incarnation AND attribute_not_exists(deleting)")
            .expression_attribute_names("#doc", generation.document.to_string())
            .expression_attribute_values(":entry", entry)
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":incarnation", s(&state.incarnation))
            .expression_attribute_values(":one", n(1))
            .build()
            .expect("table, key and expression set");
        self.transact(
            name,
            vec![
                TransactWriteItem::builder().put(doc_put).build(),
                TransactWriteItem::builder().update(list).build(),
            ],
        )
        .await
    }

    async fn transact(
        &self,
        name: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), ContextStoreError> {
        match dynamo::transact(&self.ddb, items).await? {
            true => Ok(()),
            false => Err(ContextStoreError::Conflict {
                name: name.to_owned(),
            }),
        }
    }

    /// Deletes the chunk items and vectors of `document`'s generations that `which` picks, given
    /// each generation and the age of what is stored of it.
    async fn remove_generations(
        &self,
        collection: &CollectionId,
        state: &CollectionState,
        document: DocumentKey,
        which: impl Fn(u32, std::time::Duration) -> bool,
    ) -> Result<(), ContextStoreError> {
        let now = std::time::SystemTime::now();
        let age = |written: std::time::SystemTime| now.duration_since(written).unwrap_or_default();
        let chunks = self
            .partition(collection, &format!("{CHUNK_PREFIX}{document}."))
            .await?;
        let mut deletes = Vec::new();
        let mut removed = Vec::new();
        for item in chunks {
            let sk = dynamo::string(&item, "sk")?;
            let Ok(id) = sk[CHUNK_PREFIX.len()..].parse::<ChunkId>() else {
                continue;
            };
            let written = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(
                    dynamo::opt_number(&item, "written_at")?.unwrap_or(0),
                );
            if which(id.document.generation, age(written)) {
                deletes.push(delete_request(collection, sk));
                removed.push(id);
            }
        }
        if state.backend == VectorBackend::S3Vectors {
            if removed.is_empty() {
                return Ok(());
            }
            // Vectors are written after their chunks and removed before them: a chunk item left
            // by an interrupted removal still names the vector to remove.
            self.vector_index(collection)?
                .delete(collection, &state.incarnation, &removed)
                .await?;
            return self.batch_write(deletes).await;
        }
        self.batch_write(deletes).await?;
        // Segments are written after chunks: a generation with no chunk left may still have one.
        let prefix = format!("{}/{document}.", collection.path());
        self.delete_objects(&prefix, |object, written| {
            object
                .rsplit_once('.')
                .and_then(|(_, g)| g.parse().ok())
                .is_some_and(|g| which(g, age(written)))
        })
        .await
    }

    /// Deletes the items of `collection` whose sort key starts with `prefix` and is picked by
    /// `which`.
    async fn delete_items(
        &self,
        collection: &CollectionId,
        prefix: &str,
        which: impl Fn(&str) -> bool,
    ) -> Result<(), ContextStoreError> {
        let mut deletes = Vec::new();
        for item in self.partition(collection, prefix).await? {
            let sk = dynamo::string(&item, "sk")?;
            if which(&sk) {
                deletes.push(delete_request(collection, sk));
            }
        }
        self.batch_write(deletes).await
    }

    /// Deletes the objects of the vector bucket under `prefix` that `which` picks, given each
    /// object's key and when it was written.
    async fn delete_objects(
        &self,
        prefix: &str,
        which: impl Fn(&str, std::time::SystemTime) -> bool,
    ) -> Result<(), ContextStoreError> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| ContextStoreError::s3("ListObjectsV2", e))?;
        for object in listed.iter().flat_map(|page| page.contents()) {
            let written = object
                .last_modified()
                .and_then(|t| std::time::SystemTime::try_from(*t).ok())
                .unwrap_or(std::time::UNIX_EPOCH);
            let Some(object_key) = object.key().filter(|k| which(k, written)) else {
                continue;
            };
            self.s3
                .delete_object()
                .bucket(&self.bucket)
                .key(object_key)
                .send()
                .await
                .map_err(|e| ContextStoreError::s3("DeleteObject", e))?;
        }
        Ok(())
    }

    /// Removes a document: first from the collection (readers stop finding it), then its
    /// chunks and vectors.
    pub async fn delete_document(
        &self,
        collection: &CollectionId,
        name: &str,
    ) -> Result<DocumentSummary, ContextStoreError> {
        let doc = self.document(collection, name).await?.ok_or_else(|| {
            ContextStoreError::DocumentNotFound {
                collection: collection.path(),
                name: name.to_owned(),
            }
        })?;
        let document: DocumentKey = doc
            .document
            .parse()
            .map_err(|()| MalformedItem("document"))?;
        let state = self
            .state(collection)
            .await?
            .ok_or_else(|| ContextStoreError::CollectionNotFound(collection.path()))?;
        if state.backend == VectorBackend::S3Vectors {
            // Checked before the document is unlisted: its vectors can then always be removed.
            self.vector_index(collection)?;
        }
        let delete_doc = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(collection, format!("{DOC_PREFIX}{name}"))))
            .condition_expression("generation = :generation AND document = :document")
            .expression_attribute_values(":generation", n(doc.generation))
            .expression_attribute_values(":document", s(document.to_string()))
            .build()
            .expect("table and key set");
        // Of this incarnation: a collection deleted and made again meanwhile is left alone.
        let unlist = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(collection, META.to_owned())))
            .update_expression("REMOVE documents.#doc SET updated_at = :now ADD version :one")
            .condition_expression("incarnation = :incarnation")
            .expression_attribute_values(":incarnation", s(&state.incarnation))
            .expression_attribute_names("#doc", document.to_string())
            .expression_attribute_values(":now", s(dynamo::now_rfc3339()))
            .expression_attribute_values(":one", n(1))
            .build()
            .expect("table, key and expression set");
        self.transact(
            name,
            vec![
                TransactWriteItem::builder().delete(delete_doc).build(),
                TransactWriteItem::builder().update(unlist).build(),
            ],
        )
        .await?;
        self.remove_generations(collection, &state, document, |_, _| true)
            .await?;
        self.delete_items(collection, &format!("{ATTEMPT_PREFIX}{name}"), |sk| {
            sk == format!("{ATTEMPT_PREFIX}{name}")
        })
        .await?;
        Ok(doc)
    }

    /// Removes a whole collection: its meta item first, then every document. Running it again
    /// after an interruption finishes the job.
    pub async fn delete_collection(
        &self,
        collection: &CollectionId,
    ) -> Result<usize, ContextStoreError> {
        let items = self.partition(collection, "").await?;
        if items.is_empty() {
            // Nothing left in the table; indexes an interrupted deletion left are swept still.
            let swept = match &self.vector_index {
                Some(index) => index.delete_all(collection).await?,
                None => 0,
            };
            return match swept {
                0 => Err(ContextStoreError::CollectionNotFound(collection.path())),
                _ => Ok(0),
            };
        }
        let documents = items
            .iter()
            .filter(|i| dynamo::string(i, "sk").is_ok_and(|sk| sk.starts_with(DOC_PREFIX)))
            .count();
        let backend = match items
            .iter()
            .find(|i| dynamo::string(i, "sk").is_ok_and(|sk| sk == META))
        {
            Some(meta) => read_state(meta)?.backend,
            None => VectorBackend::Memory,
        };
        if backend == VectorBackend::S3Vectors {
            self.vector_index(collection)?;
        }
        // First the tombstone: from here no ingestion commits to the collection and no search
        // reads it, and an interrupted deletion is finished by running it again. The meta item
        // goes last.
        let marked = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(collection, META.to_owned())))
            .update_expression("SET deleting = :yes")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await;
        match marked {
            Ok(_) => {}
            // No meta item, only what an interrupted deletion left: nothing reads it.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
            Err(e) => return Err(DynamoError::new("UpdateItem", e).into()),
        }
        // The indexes of every incarnation, the items and the objects; the meta item last.
        if let Some(index) = &self.vector_index {
            index.delete_all(collection).await?;
        }
        self.delete_objects(&format!("{}/", collection.path()), |_, _| true)
            .await?;
        self.delete_items(collection, "", |sk| sk != META).await?;
        self.delete_items(collection, META, |sk| sk == META).await?;
        Ok(documents)
    }

    /// Loads a collection's vectors: every committed document generation's segment, opened
    /// under `vectors`, in one index. `None` if the collection does not exist.
    pub async fn load(
        &self,
        collection: &CollectionId,
        vectors: &Envelope,
    ) -> Result<Option<LoadedCollection>, ContextStoreError> {
        match self.state(collection).await? {
            Some(state) => self.load_state(collection, &state, vectors).await.map(Some),
            None => Ok(None),
        }
    }

    /// Loads the vectors of a collection in the state given (read just before).
    pub async fn load_state(
        &self,
        collection: &CollectionId,
        state: &CollectionState,
        vectors: &Envelope,
    ) -> Result<LoadedCollection, ContextStoreError> {
        use futures::{StreamExt, TryStreamExt};
        let total: usize = state.documents.values().map(|&(_, c)| c as usize).sum();
        let dimensions = state.dimensions as usize;
        let mut chunks = Vec::with_capacity(total);
        let mut index = VectorIndex::with_capacity(dimensions, total)?;
        // Segments fetched and opened SEGMENT_LOADS at a time (each its own GetObject and, for
        // a data key not cached, its own KMS Decrypt), added to the index in the meta item's
        // order as they arrive: only those in flight are held besides the index.
        let mut segments = futures::stream::iter(&state.documents)
            .map(|(&document, &(generation, count))| async move {
                let generation = DocumentGeneration {
                    document,
                    generation,
                };
                let plain = self.segment(collection, &generation, vectors).await?;
                Ok::<_, ContextStoreError>((generation, count, plain))
            })
            .buffered(SEGMENT_LOADS);
        while let Some((generation, count, plain)) = segments.try_next().await? {
            let (stored, segment) = decode_segment(&plain)?;
            let segment = Zeroizing::new(segment);
            drop(plain);
            if stored != state.dimensions || segment.len() != count as usize * dimensions {
                return Err(MalformedSegment.into());
            }
            chunks.extend((0..count).map(|index| ChunkId {
                document: generation,
                index,
            }));
            index.extend(segment.chunks_exact(dimensions))?;
        }
        Ok(LoadedCollection {
            incarnation: state.incarnation.clone(),
            version: state.version,
            model: state.model.clone(),
            dimensions: state.dimensions,
            chunks,
            index,
        })
    }

    /// The fingerprints sealed with each document an ISV collection lists, opened under `key`:
    /// what `scan --collection` looks for.
    pub async fn fingerprints(
        &self,
        collection: &CollectionId,
        key: &Envelope,
    ) -> Result<Vec<(DocumentSummary, Fingerprints)>, ContextStoreError> {
        let state = self
            .state(collection)
            .await?
            .ok_or_else(|| ContextStoreError::CollectionNotFound(collection.path()))?;
        let mut out = Vec::new();
        for item in self.partition(collection, DOC_PREFIX).await? {
            let doc = read_document(&item)?;
            if !state.lists(&doc) {
                continue;
            }
            let sealed = Sealed {
                ciphertext: dynamo::bytes(&item, "fp_ciphertext")?,
                wrapped_key: dynamo::bytes(&item, "fp_wrapped_key")?,
            };
            let generation = DocumentGeneration {
                document: doc
                    .document
                    .parse()
                    .map_err(|()| MalformedItem("document"))?,
                generation: doc.generation,
            };
            let plain = key
                .open(&sealed, &collection.fingerprint_context(&generation))
                .await?;
            let fingerprints =
                Fingerprints::from_bytes(&plain).map_err(|_| MalformedItem("fp_ciphertext"))?;
            out.push((doc, fingerprints));
        }
        Ok(out)
    }

    /// The `k` chunks of a collection kept in S3 Vectors nearest `query` with a cosine of at
    /// least `min_score`, best first: of the committed generations of `state` only.
    pub async fn search_index(
        &self,
        collection: &CollectionId,
        state: &CollectionState,
        query: &[f32],
        k: usize,
        min_score: f32,
    ) -> Result<Vec<(ChunkId, f32)>, ContextStoreError> {
        // Some room for generations written and not committed, or replaced and not removed.
        let top_k = (k * 2 + 10).min(MAX_TOP_K);
        let found = self
            .vector_index(collection)?
            .query(collection, &state.incarnation, query, top_k)
            .await?;
        let mut hits: Vec<(ChunkId, f32)> = found
            .into_iter()
            .filter_map(|(key, score)| Some((key.parse::<ChunkId>().ok()?, score)))
            .filter(|(id, score)| state.holds(id) && *score >= min_score)
            .collect();
        hits.truncate(k);
        Ok(hits)
    }

    /// One document generation's vectors, opened.
    async fn segment(
        &self,
        collection: &CollectionId,
        generation: &DocumentGeneration,
        vectors: &Envelope,
    ) -> Result<Zeroizing<Vec<u8>>, ContextStoreError> {
        let body = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(Self::segment_key(collection, generation))
            .send()
            .await
            .map_err(|e| ContextStoreError::s3("GetObject", e))?
            .body
            .collect()
            .await
            .map_err(|e| ContextStoreError::s3("GetObject", e))?
            .into_bytes();
        let sealed = read_sealed_body(&body)?;
        Ok(vectors
            .open(&sealed, &collection.vector_context(generation))
            .await?)
    }

    /// The sealed texts of some chunks of a collection, in the order asked (`None` for a chunk
    /// that no longer exists).
    pub async fn sealed_chunks(
        &self,
        collection: &CollectionId,
        ids: &[ChunkId],
    ) -> Result<Vec<Option<Sealed>>, ContextStoreError> {
        let mut found: HashMap<String, Sealed> = HashMap::new();
        for batch in ids.chunks(GET_BATCH) {
            let keys = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(
                    batch
                        .iter()
                        .map(|id| key(collection, chunk_sk(id)))
                        .collect(),
                ))
                .build()
                .expect("keys set");
            let mut pending = Some(HashMap::from([(self.table.clone(), keys)]));
            while let Some(request) = pending.take().filter(|r| !r.is_empty()) {
                let out = self
                    .ddb
                    .batch_get_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .map_err(|e| DynamoError::new("BatchGetItem", e))?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    found.insert(dynamo::string(&item, "sk")?, dynamo::sealed(&item)?);
                }
                pending = out.unprocessed_keys;
            }
        }
        Ok(ids.iter().map(|id| found.remove(&chunk_sk(id))).collect())
    }
}

/// Opens one chunk's text, sealed under `text` for `collection`: fails unless it was sealed for
/// exactly this collection, owner, document generation and index.
pub async fn open_chunk(
    text: &Envelope,
    collection: &CollectionId,
    id: &ChunkId,
    sealed: &Sealed,
) -> Result<ChunkText, ContextStoreError> {
    let plain = text
        .open_part(
            sealed,
            &collection.text_context(&id.document),
            &collection.chunk_context(id),
        )
        .await?;
    serde_json::from_slice(&plain)
        .map_err(|_| ContextStoreError::Envelope(EnvelopeError::Integrity))
}

fn collection_of(item: &Item) -> Result<CollectionId, MalformedItem> {
    let pk = dynamo::string(item, "pk")?;
    let parts: Vec<&str> = pk.split('/').collect();
    let owner_name = match parts.as_slice() {
        ["isv", name] => Some((Owner::Isv, *name)),
        ["tenant", id, name] => Some((Owner::Tenant((*id).to_owned()), *name)),
        _ => None,
    };
    owner_name
        .and_then(|(owner, name)| CollectionId::new(owner, name).ok())
        .ok_or(MalformedItem("pk"))
}

fn read_state(item: &Item) -> Result<CollectionState, ContextStoreError> {
    let documents = item
        .get("documents")
        .and_then(|v| v.as_m().ok())
        .ok_or(MalformedItem("documents"))?
        .iter()
        .map(|(doc, entry)| {
            let entry = entry.as_m().map_err(|_| MalformedItem("documents"))?;
            Ok((
                doc.parse().map_err(|()| MalformedItem("documents"))?,
                (
                    dynamo::number(entry, "generation")?,
                    dynamo::number(entry, "chunks")?,
                ),
            ))
        })
        .collect::<Result<_, MalformedItem>>()?;
    Ok(CollectionState {
        incarnation: dynamo::string(item, "incarnation")?,
        model: dynamo::string(item, "model")?,
        dimensions: dynamo::number(item, "dimensions")?,
        // Collections made before S3 Vectors kept their vectors in memory.
        backend: dynamo::opt_string(item, "backend")
            .map_or(Ok(VectorBackend::Memory), |b| b.parse())
            .map_err(|_| MalformedItem("backend"))?,
        tenant_key: dynamo::opt_string(item, "tenant_key"),
        version: dynamo::number(item, "version")?,
        documents,
        updated_at: dynamo::string(item, "updated_at")?,
        deleting: item.contains_key("deleting"),
    })
}

fn summary(collection: &CollectionId, state: &CollectionState) -> CollectionSummary {
    CollectionSummary {
        owner: collection.owner.kind(),
        tenant: collection.owner.tenant().map(str::to_owned),
        collection: collection.name.clone(),
        model: state.model.clone(),
        dimensions: state.dimensions,
        backend: state.backend,
        version: state.version,
        documents: state.documents.len(),
        chunks: state.documents.values().map(|&(_, c)| u64::from(c)).sum(),
        updated_at: state.updated_at.clone(),
    }
}

fn read_document(item: &Item) -> Result<DocumentSummary, MalformedItem> {
    Ok(DocumentSummary {
        name: dynamo::string(item, "name")?,
        document: dynamo::string(item, "document")?,
        generation: dynamo::number(item, "generation")?,
        chunks: dynamo::number(item, "chunks")?,
        bytes: dynamo::number(item, "bytes")?,
        sha256: dynamo::string(item, "sha256")?,
        ingested_at: dynamo::string(item, "ingested_at")?,
    })
}
