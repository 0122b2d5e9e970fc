//! Retrieval context: the ISV's knowledge and each tenant's documents, cut into chunks that are
//! embedded, sealed and retrieved (issue 17). Here: how a document becomes chunks, and how text
//! becomes vectors.

pub mod chunk;
pub mod embed;
