//! invoke as a library: the handler and its parts, so the binary (main.rs) only wires them up and
//! the benchmarks can drive the same code in process.

pub mod api;
pub mod config;
pub mod converse;
pub mod error;
pub mod handler;
pub mod identity;
pub mod logging_check;
#[cfg(test)]
mod openapi_tests;
pub mod prompt_cache;
pub mod retrieval;
pub mod stream;
pub mod wiring;
