//! retrieve-context: the chunks nearest a query in the collections a tenant may read, returned
//! as references with their text still sealed. It never holds chunk text: its role may open
//! vectors, not chunks.

pub mod config;
pub mod handler;
