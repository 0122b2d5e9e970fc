//! promptseal's library: the domain model, envelope encryption, prompt rendering and the DynamoDB
//! stores that the Lambda functions and the admin CLI share. Pure logic knows nothing of AWS; the
//! stores are concrete adapters around real SDK clients.

pub mod assembly;
pub mod dynamo;
pub mod envelope;
pub mod render;
pub mod template;
pub mod templates;
pub mod tenants;
pub mod usage;
