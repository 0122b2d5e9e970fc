//! The context store against the local stack: sealed chunks and vectors written, loaded into an
//! index and searched; a chunk that opens only in its own place; an ingestion cut short between
//! its writes and its commit, then done again, leaving no duplicate; collections whose vectors
//! are kept in S3 Vectors, each in an index of its own.

use promptseal::context::collection::{ChunkId, CollectionId, DocumentGeneration, Owner};
use promptseal::context::embed::Purpose;
use promptseal::envelope::{CachePolicy, Envelope, EnvelopeError};
use promptseal::store::context::{
    ContextStore, ContextStoreError, LoadedCollection, VectorBackend, open_chunk,
};
use promptseal::store::vector_index::S3VectorIndex;
use promptseal_devstack::ContextFixture;

mod common;

const HANDBOOK: &str = "# Billing\n\nInvoices are sent on the first business day of each month \
by the ledger robot named QUILLFEATHER.\n\n# Accounts\n\nTo reset a forgotten password, open \
Settings and choose Reset password.\n\n# Shipping\n\nOrders ship within two days; tracking \
numbers arrive by email.\n";

struct Fixture {
    stack: common::Stack,
    ctx: ContextFixture,
    store: ContextStore,
}

impl Fixture {
    async fn new() -> Self {
        let stack = common::fresh_stack().await;
        let ctx = ContextFixture::new(&stack.config, &stack.resources).await;
        let store = ctx.store.clone();
        Self { stack, ctx, store }
    }

    /// Changes a collection's meta item behind the store, as older code or an operation cut
    /// short leaves it (`:yes` is `true`).
    async fn update_meta(&self, collection: &CollectionId, expression: &str) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let update = self
            .stack
            .ddb()
            .update_item()
            .table_name(self.stack.resources.table("ContextTable"))
            .key("pk", AttributeValue::S(collection.path()))
            .key("sk", AttributeValue::S("meta".into()))
            .update_expression(expression);
        let update = match expression.contains(":yes") {
            true => update.expression_attribute_values(":yes", AttributeValue::Bool(true)),
            false => update,
        };
        update.send().await.unwrap();
    }

    /// The collection's vectors, loaded under the vector key.
    async fn loaded(&self, collection: &CollectionId) -> LoadedCollection {
        let key = self.key("VectorKey");
        self.store.load(collection, &key).await.unwrap().unwrap()
    }

    /// A fixture whose collection of `owner` holds the handbook.
    async fn with_handbook(owner: Owner) -> (Self, CollectionId) {
        let f = Self::new().await;
        let name = if owner == Owner::Isv { "kb" } else { "docs" };
        let collection = CollectionId::new(owner, name).unwrap();
        f.put(&collection, "handbook.md", HANDBOOK, &f.key("VectorKey"))
            .await
            .unwrap();
        (f, collection)
    }

    fn key(&self, logical_id: &str) -> Envelope {
        Envelope::new(
            aws_sdk_kms::Client::new(&self.stack.config),
            self.stack.resources.key_alias(logical_id),
            CachePolicy::default(),
        )
    }

    async fn put(
        &self,
        collection: &CollectionId,
        name: &str,
        text: &str,
        vectors_key: &Envelope,
    ) -> Result<u32, ContextStoreError> {
        let stored = self
            .ctx
            .ingest_sealing_vectors_with(collection, name, text, vectors_key)
            .await?;
        Ok(stored.generation)
    }

    /// The raw bytes of every stored item and object.
    async fn raw(&self) -> Vec<u8> {
        let items = self
            .stack
            .ddb()
            .scan()
            .table_name(self.stack.resources.table("ContextTable"))
            .send()
            .await
            .unwrap();
        let mut out = format!("{:?}", items.items()).into_bytes();
        let s3 = aws_sdk_s3::Client::new(&self.stack.config);
        let bucket = self.stack.resources.bucket("VectorBucket");
        let listed = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
        for object in listed.contents() {
            let body = s3
                .get_object()
                .bucket(bucket)
                .key(object.key().unwrap())
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap();
            out.extend_from_slice(&body.into_bytes());
        }
        out
    }

    async fn chunk_items(&self) -> usize {
        self.stack
            .ddb()
            .scan()
            .table_name(self.stack.resources.table("ContextTable"))
            .filter_expression("begins_with(sk, :c)")
            .expression_attribute_values(
                ":c",
                aws_sdk_dynamodb::types::AttributeValue::S("chunk/".into()),
            )
            .send()
            .await
            .unwrap()
            .items()
            .len()
    }
}

#[tokio::test]
async fn stored_chunks_are_found_by_their_vectors_and_open_only_in_their_place() {
    let (f, kb) = Fixture::with_handbook(Owner::Isv).await;

    // Nothing stored holds the text in the clear.
    let raw = f.raw().await;
    for word in ["QUILLFEATHER", "Invoices are sent", "tracking"] {
        assert!(
            !raw.windows(word.len()).any(|w| w == word.as_bytes()),
            "{word} stored in the clear"
        );
    }

    // The vectors open under the vector key only, and find the chunk that answers.
    assert!(matches!(
        f.store.load(&kb, &f.key("ContextKey")).await,
        Err(ContextStoreError::Envelope(_))
    ));
    let loaded = f.loaded(&kb).await;
    assert_eq!(loaded.chunks.len(), 3);
    let query = f
        .ctx
        .embedder()
        .embed(&["when are invoices sent"], Purpose::Query)
        .await
        .unwrap();
    let hits = loaded.index.search(&query.vectors[0], 1, 0.0);
    let best = loaded.chunks[hits[0].index];
    let sealed = f.store.sealed_chunks(&kb, &[best]).await.unwrap();
    let sealed = sealed[0].clone().expect("the chunk exists");
    let text = open_chunk(&f.key("ContextKey"), &kb, &best, &sealed)
        .await
        .unwrap();
    assert_eq!(text.section, "Billing");
    assert!(text.text.contains("QUILLFEATHER"));

    // Moved to another chunk id, collection or owner, it does not open.
    let other_index = ChunkId {
        index: best.index + 1,
        ..best
    };
    let elsewhere = [
        (kb.clone(), other_index),
        (CollectionId::new(Owner::Isv, "kb2").unwrap(), best),
        (
            CollectionId::new(Owner::Tenant("kb".into()), "kb").unwrap(),
            best,
        ),
    ];
    for (collection, id) in elsewhere {
        let err = open_chunk(&f.key("ContextKey"), &collection, &id, &sealed)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ContextStoreError::Envelope(EnvelopeError::Integrity | EnvelopeError::Kms { .. })
            ),
            "{collection:?} {id}: {err:?}"
        );
    }
    // Nor under the vector key, nor a chunk that does not exist.
    assert!(
        open_chunk(&f.key("VectorKey"), &kb, &best, &sealed)
            .await
            .is_err()
    );
    assert_eq!(
        f.store
            .sealed_chunks(&kb, &[other_index, ChunkId { index: 99, ..best }])
            .await
            .unwrap()
            .iter()
            .filter(|s| s.is_some())
            .count(),
        1,
        "a chunk id that was never written finds nothing"
    );
}

#[tokio::test]
async fn an_ingestion_cut_short_before_its_commit_leaves_nothing_once_done_again() {
    let (f, kb) = Fixture::with_handbook(Owner::Tenant("acme".into())).await;
    let version = f.store.state(&kb).await.unwrap().unwrap().version;

    // The new generation's chunks are written, then sealing its vectors fails: nothing commits.
    let broken = Envelope::new(
        aws_sdk_kms::Client::new(&f.stack.config),
        "alias/no-such-key",
        CachePolicy::default(),
    );
    let changed = HANDBOOK.replace("two days", "three days");
    let err = f
        .put(&kb, "handbook.md", &changed, &broken)
        .await
        .unwrap_err();
    assert!(matches!(err, ContextStoreError::Envelope(_)), "{err:?}");
    let state = f.store.state(&kb).await.unwrap().unwrap();
    assert_eq!(state.version, version, "readers see no change");
    assert_eq!(
        f.chunk_items().await,
        6,
        "the cut-short generation's chunks are left over"
    );
    let loaded = f.loaded(&kb).await;
    assert!(loaded.chunks.iter().all(|c| c.document.generation == 1));

    // Done again: the leftovers and the replaced generation are gone, no chunk twice.
    assert_eq!(
        f.put(&kb, "handbook.md", &changed, &f.key("VectorKey"))
            .await
            .unwrap(),
        3,
        "every attempt has a generation of its own"
    );
    assert_eq!(f.chunk_items().await, 3);
    let loaded = f.loaded(&kb).await;
    assert_eq!(loaded.chunks.len(), 3);
    assert!(loaded.chunks.iter().all(|c| c.document.generation == 3));
    assert!(f.store.state(&kb).await.unwrap().unwrap().version > version);
}

/// A collection stored before collections named where they keep their vectors is read as one
/// kept in memory, and still loads.
#[tokio::test]
async fn a_collection_from_before_backends_keeps_its_vectors_in_memory() {
    let (f, kb) = Fixture::with_handbook(Owner::Isv).await;
    f.update_meta(&kb, "REMOVE backend").await;
    let state = f.store.state(&kb).await.unwrap().unwrap();
    assert_eq!(state.backend, VectorBackend::Memory);
    let loaded = f.loaded(&kb).await;
    assert_eq!(loaded.chunks.len(), 3);
}

/// A deletion cut short leaves its tombstone: the collection takes no more ingestion until the
/// deletion is run again, which finishes it, and the name can then be used again.
#[tokio::test]
async fn a_collection_being_deleted_takes_nothing_more_until_the_deletion_is_done() {
    let (f, kb) = Fixture::with_handbook(Owner::Tenant("acme".into())).await;
    // What `delete_collection` writes first, as a deletion interrupted right after leaves it.
    f.update_meta(&kb, "SET deleting = :yes").await;
    assert!(f.store.state(&kb).await.unwrap().unwrap().deleting);
    let err = f
        .put(
            &kb,
            "other.md",
            "# Other\n\nMore text.",
            &f.key("VectorKey"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "collection_being_deleted", "{err:?}");
    assert_eq!(f.store.delete_collection(&kb).await.unwrap(), 1);
    assert!(f.store.state(&kb).await.unwrap().is_none());
    assert_eq!(f.chunk_items().await, 0);
    f.put(&kb, "handbook.md", HANDBOOK, &f.key("VectorKey"))
        .await
        .unwrap();
}

/// The keys of the vectors in an S3 Vectors index, sorted.
async fn index_keys(client: &aws_sdk_s3vectors::Client, bucket: &str, index: &str) -> Vec<String> {
    let out = client
        .list_vectors()
        .vector_bucket_name(bucket)
        .index_name(index)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<String> = out.vectors.into_iter().map(|v| v.key).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_collection_in_s3_vectors_has_an_index_of_its_own_that_follows_its_documents() {
    let mut f = Fixture::new().await;
    f.ctx.backend = VectorBackend::S3Vectors;
    let acme = CollectionId::new(Owner::Tenant("acme".into()), "docs").unwrap();
    let globex = CollectionId::new(Owner::Tenant("globex".into()), "docs").unwrap();
    f.put(&acme, "handbook.md", HANDBOOK, &f.key("VectorKey"))
        .await
        .unwrap();
    f.put(&globex, "handbook.md", HANDBOOK, &f.key("VectorKey"))
        .await
        .unwrap();
    let state = f.store.state(&acme).await.unwrap().unwrap();
    assert_eq!(state.backend, VectorBackend::S3Vectors);
    let globex_state = f.store.state(&globex).await.unwrap().unwrap();

    // One index per collection, keyed by chunk id; no sealed segment in the vector bucket.
    let client = aws_sdk_s3vectors::Client::new(&f.stack.config);
    let bucket = f.stack.resources.bucket("VectorIndexBucket");
    let indexes = |client: aws_sdk_s3vectors::Client| async move {
        let out = client
            .list_indexes()
            .vector_bucket_name(bucket)
            .send()
            .await
            .unwrap();
        let mut names: Vec<String> = out.indexes.into_iter().map(|i| i.index_name).collect();
        names.sort();
        names
    };
    let acme_index = S3VectorIndex::index_name(&acme, &state.incarnation);
    let globex_index = S3VectorIndex::index_name(&globex, &globex_state.incarnation);
    let mut both = vec![acme_index.clone(), globex_index.clone()];
    both.sort();
    assert_eq!(indexes(client.clone()).await, both);
    let generation_one: Vec<String> = {
        let doc = f
            .store
            .document(&acme, "handbook.md")
            .await
            .unwrap()
            .unwrap();
        (0..3).map(|i| format!("{}.1.{i}", doc.document)).collect()
    };
    assert_eq!(
        index_keys(&client, bucket, &acme_index).await,
        generation_one
    );
    let objects = aws_sdk_s3::Client::new(&f.stack.config)
        .list_objects_v2()
        .bucket(f.stack.resources.bucket("VectorBucket"))
        .send()
        .await
        .unwrap();
    assert!(objects.contents().is_empty());

    // The search finds the chunk that answers, which opens in its place.
    let query = f
        .ctx
        .embedder()
        .embed(&["when are invoices sent"], Purpose::Query)
        .await
        .unwrap();
    let query = &query.vectors[0];
    let hits = f
        .store
        .search_index(&acme, &state, query, 1, 0.0)
        .await
        .unwrap();
    let (best, score) = hits[0];
    assert!(score > 0.0);
    let sealed = f.store.sealed_chunks(&acme, &[best]).await.unwrap()[0]
        .clone()
        .unwrap();
    let text = open_chunk(&f.key("ContextKey"), &acme, &best, &sealed)
        .await
        .unwrap();
    assert!(text.text.contains("QUILLFEATHER"));

    // Replaced: the index holds the new generation's vectors only.
    let changed = HANDBOOK.replace("two days", "three days");
    assert_eq!(
        f.put(&acme, "handbook.md", &changed, &f.key("VectorKey"))
            .await
            .unwrap(),
        2
    );
    let keys = index_keys(&client, bucket, &acme_index).await;
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| k.contains(".2.")), "{keys:?}");

    // A vector of a generation the collection does not list (an ingestion at work, or cut
    // short), however near the query, is never returned.
    let state = f.store.state(&acme).await.unwrap().unwrap();
    let uncommitted = ChunkId {
        document: DocumentGeneration {
            document: best.document.document,
            generation: 9,
        },
        index: 0,
    };
    S3VectorIndex::new(client.clone(), bucket)
        .put(
            &acme,
            &state.incarnation,
            &[uncommitted],
            std::slice::from_ref(query),
        )
        .await
        .unwrap();
    let hits = f
        .store
        .search_index(&acme, &state, query, 5, -1.0)
        .await
        .unwrap();
    assert_eq!(hits.len(), 3);
    assert!(
        hits.iter().all(|(id, _)| id.document.generation == 2),
        "{hits:?}"
    );

    // Deleted: its index goes, globex's stays and still answers.
    f.store.delete_collection(&acme).await.unwrap();
    assert_eq!(indexes(client.clone()).await, vec![globex_index]);
    let hits = f
        .store
        .search_index(&globex, &globex_state, query, 1, 0.0)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
}

#[tokio::test]
async fn two_ingestions_of_one_document_at_once_leave_one_whole_generation() {
    let (f, kb) = Fixture::with_handbook(Owner::Isv).await;
    let vectors = f.key("VectorKey");
    for round in 0..3 {
        let a = HANDBOOK.replace("two days", &format!("{round} days"));
        let b = format!("# Other\n\nA different text, round {round}, in one section.");
        let (ra, rb) = tokio::join!(
            f.put(&kb, "handbook.md", &a, &vectors),
            f.put(&kb, "handbook.md", &b, &vectors),
        );
        assert!(ra.is_ok() || rb.is_ok(), "{ra:?} {rb:?}");
        for r in [&ra, &rb] {
            if let Err(e) = r {
                assert!(matches!(e, ContextStoreError::Conflict { .. }), "{e:?}");
            }
        }
        // Whichever won, the committed generation is whole and nothing else can be found.
        let doc = f.store.document(&kb, "handbook.md").await.unwrap().unwrap();
        let loaded = f.store.load(&kb, &vectors).await.unwrap().unwrap();
        assert_eq!(loaded.chunks.len(), doc.chunks as usize);
        assert!(
            loaded
                .chunks
                .iter()
                .all(|c| c.document.generation == doc.generation)
        );
        let sealed = f.store.sealed_chunks(&kb, &loaded.chunks).await.unwrap();
        for (id, sealed) in loaded.chunks.iter().zip(sealed) {
            let text = open_chunk(&f.key("ContextKey"), &kb, id, &sealed.expect("stored"))
                .await
                .unwrap();
            let from_a = a.contains(text.text.as_str());
            let from_b = b.contains(text.text.as_str());
            assert!(from_a != from_b, "a chunk of one text or the other");
        }
    }
}
