//! Amazon S3 Vectors as the vector store of collections that outgrow a Lambda's memory.
//!
//! Each incarnation of a collection has an index of its own in the vector bucket, named from the
//! collection's owner, tenant and name and from the incarnation (`ps-t-<digest>-<incarnation>`).
//! retrieve-context names the index from the calling tenant's id, so a tenant's query only ever
//! reaches its own collections' indexes: isolation is by index, never by a metadata filter. A
//! vector's key is its chunk id and it carries no metadata.
//!
//! S3 Vectors has to read vectors to search them, so they are not sealed by promptseal as the
//! in-memory segments are: the service keeps them encrypted at rest under the vector bucket's KMS
//! key, and IAM decides who may query (retrieve-context alone) and who may write (operators).

use aws_sdk_s3vectors::types::{DataType, DistanceMetric, PutInputVector, VectorData};
use sha2::Digest;

use crate::context::collection::{ChunkId, CollectionId};

/// The most vectors one PutVectors takes, and keys one DeleteVectors.
const PUT_BATCH: usize = 500;
const DELETE_BATCH: usize = 500;
/// The most results one QueryVectors returns.
pub const MAX_TOP_K: usize = 100;

#[derive(Debug, thiserror::Error)]
#[error("S3 Vectors {operation} failed")]
pub struct VectorIndexError {
    pub operation: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl VectorIndexError {
    fn new(operation: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            operation,
            source: Box::new(e),
        }
    }
}

/// One vector bucket of S3 Vectors.
#[derive(Clone)]
pub struct S3VectorIndex {
    client: aws_sdk_s3vectors::Client,
    bucket: String,
}

impl S3VectorIndex {
    /// The vector bucket named, or given by its ARN (`arn:...:bucket/NAME`, what CloudFormation's
    /// `Ref` gives).
    pub fn new(client: aws_sdk_s3vectors::Client, bucket: &str) -> Self {
        let name = match bucket.strip_prefix("arn:") {
            Some(arn) => arn.rsplit_once(":bucket/").map_or(bucket, |(_, name)| name),
            None => bucket,
        };
        Self {
            client,
            bucket: name.to_owned(),
        }
    }

    /// What every index of `collection` is named with: `ps-i-` (the ISV's) or `ps-t-` (a
    /// tenant's) and a digest of the collection's path, which names the tenant.
    fn prefix(collection: &CollectionId) -> String {
        let digest = sha2::Sha256::digest(collection.path().as_bytes());
        let kind = &collection.owner.kind()[..1];
        format!("ps-{kind}-{}-", &hex::encode(digest)[..24])
    }

    /// The index of one incarnation of `collection` (lowercase, at most 63 characters).
    pub fn index_name(collection: &CollectionId, incarnation: &str) -> String {
        format!("{}{incarnation}", Self::prefix(collection))
    }

    /// Creates the incarnation's index (cosine distance, float32) unless it exists.
    pub async fn create(
        &self,
        collection: &CollectionId,
        incarnation: &str,
        dimensions: u32,
    ) -> Result<(), VectorIndexError> {
        let created = self
            .client
            .create_index()
            .vector_bucket_name(&self.bucket)
            .index_name(Self::index_name(collection, incarnation))
            .data_type(DataType::Float32)
            .dimension(dimensions as i32)
            .distance_metric(DistanceMetric::Cosine)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conflict_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(VectorIndexError::new("CreateIndex", e)),
        }
    }

    /// Writes the vectors of some chunks, keyed by chunk id.
    pub async fn put(
        &self,
        collection: &CollectionId,
        incarnation: &str,
        ids: &[ChunkId],
        vectors: &[Vec<f32>],
    ) -> Result<(), VectorIndexError> {
        let index = Self::index_name(collection, incarnation);
        let items: Vec<PutInputVector> = ids
            .iter()
            .zip(vectors)
            .map(|(id, vector)| {
                PutInputVector::builder()
                    .key(id.to_string())
                    .data(VectorData::Float32(vector.clone()))
                    .build()
                    .expect("key set")
            })
            .collect();
        for batch in items.chunks(PUT_BATCH) {
            self.client
                .put_vectors()
                .vector_bucket_name(&self.bucket)
                .index_name(&index)
                .set_vectors(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| VectorIndexError::new("PutVectors", e))?;
        }
        Ok(())
    }

    /// Deletes the vectors of some chunks (those never written are no error; a missing index or
    /// bucket is).
    pub async fn delete(
        &self,
        collection: &CollectionId,
        incarnation: &str,
        ids: &[ChunkId],
    ) -> Result<(), VectorIndexError> {
        let index = Self::index_name(collection, incarnation);
        for batch in ids.chunks(DELETE_BATCH) {
            self.client
                .delete_vectors()
                .vector_bucket_name(&self.bucket)
                .index_name(&index)
                .set_keys(Some(batch.iter().map(ToString::to_string).collect()))
                .send()
                .await
                .map_err(|e| VectorIndexError::new("DeleteVectors", e))?;
        }
        Ok(())
    }

    /// The `top_k` nearest vectors to `query` as (key, cosine), nearest first. Asked of a
    /// collection with documents, a missing index (or bucket) is an error, never "nothing found".
    pub async fn query(
        &self,
        collection: &CollectionId,
        incarnation: &str,
        query: &[f32],
        top_k: usize,
    ) -> Result<Vec<(String, f32)>, VectorIndexError> {
        let out = self
            .client
            .query_vectors()
            .vector_bucket_name(&self.bucket)
            .index_name(Self::index_name(collection, incarnation))
            .top_k(top_k.clamp(1, MAX_TOP_K) as i32)
            .query_vector(VectorData::Float32(query.to_vec()))
            .return_distance(true)
            .send()
            .await
            .map_err(|e| VectorIndexError::new("QueryVectors", e))?;
        Ok(out
            .vectors
            .into_iter()
            .filter_map(|v| Some((v.key, 1.0 - v.distance?)))
            .collect())
    }

    /// Deletes every index of `collection`, of any incarnation. Returns how many there were.
    pub async fn delete_all(&self, collection: &CollectionId) -> Result<usize, VectorIndexError> {
        let prefix = Self::prefix(collection);
        let pages = self
            .client
            .list_indexes()
            .vector_bucket_name(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| VectorIndexError::new("ListIndexes", e))?;
        let names: Vec<String> = pages
            .into_iter()
            .flat_map(|page| page.indexes)
            .map(|index| index.index_name)
            // Checked here too: another collection's index is never deleted on a listing's word.
            .filter(|name| name.starts_with(&prefix))
            .collect();
        for name in &names {
            self.client
                .delete_index()
                .vector_bucket_name(&self.bucket)
                .index_name(name)
                .send()
                .await
                .map_err(|e| VectorIndexError::new("DeleteIndex", e))?;
        }
        Ok(names.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::collection::Owner;

    #[test]
    fn the_bucket_is_named_or_given_by_its_arn() {
        let client = aws_sdk_s3vectors::Client::from_conf(
            aws_sdk_s3vectors::Config::builder()
                .behavior_version(aws_sdk_s3vectors::config::BehaviorVersion::latest())
                .build(),
        );
        let arn = "arn:aws:s3vectors:eu-west-1:123456789012:bucket/ps-vector-index";
        assert_eq!(
            S3VectorIndex::new(client.clone(), arn).bucket,
            "ps-vector-index"
        );
        assert_eq!(
            S3VectorIndex::new(client, "ps-vector-index").bucket,
            "ps-vector-index"
        );
    }

    #[test]
    fn index_names_are_valid_and_tell_owners_apart() {
        let tenant = |id: &str, name: &str| {
            CollectionId::new(Owner::Tenant(id.to_owned()), name).expect("valid")
        };
        let isv = CollectionId::new(Owner::Isv, "Docs_2").expect("valid");
        let names = [
            S3VectorIndex::index_name(&isv, "0123456789abcdef"),
            S3VectorIndex::index_name(&tenant("Acme_Corp", "Docs_2"), "0123456789abcdef"),
            S3VectorIndex::index_name(&tenant("globex", "Docs_2"), "0123456789abcdef"),
            S3VectorIndex::index_name(
                &tenant(&"t".repeat(64), &"n".repeat(64)),
                "0123456789abcdef",
            ),
        ];
        for name in &names {
            assert!((3..=63).contains(&name.len()), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
        }
        assert!(names[0].starts_with("ps-i-"));
        assert!(names[1].starts_with("ps-t-"));
        let distinct: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        // Another incarnation is another index, under the collection's prefix.
        let again = S3VectorIndex::index_name(&isv, "fedcba9876543210");
        assert_ne!(again, names[0]);
        assert!(again.starts_with(&S3VectorIndex::prefix(&isv)));
    }
}
