//! The DynamoDB stores: concrete adapters around real SDK clients, one module per table, and the
//! reading of typed fields out of items that they share.

pub mod dynamo;
pub mod fingerprints;
pub mod records;
pub mod sealed;
pub mod templates;
pub mod tenants;
pub mod usage;
