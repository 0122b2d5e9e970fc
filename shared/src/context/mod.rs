//! Retrieval context: the ISV's knowledge and each tenant's documents, cut into chunks that are
//! embedded, sealed and retrieved (issue 17). Here: how a file is read, how a document becomes
//! chunks, how text becomes vectors, and how the vectors nearest a query are found.

pub mod chunk;
pub mod collection;
pub mod document;
pub mod embed;
pub mod retrieval;
pub mod search;
