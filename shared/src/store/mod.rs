//! The stores: concrete adapters around real SDK clients, one module per DynamoDB table (the
//! context store's vectors in S3 beside its table), and the reading of typed fields out of items
//! that they share.

pub mod context;
pub mod dynamo;
pub mod fingerprints;
pub mod records;
pub mod sealed;
pub mod templates;
pub mod tenants;
pub mod usage;
pub mod vector_index;
