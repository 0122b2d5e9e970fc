//! promptseal's library: the domain model, envelope encryption, prompt rendering and the DynamoDB
//! stores that the Lambda functions and the admin CLI share. Pure logic knows nothing of AWS; the
//! stores are concrete adapters around real SDK clients.

pub mod assembly;
pub mod context;
pub mod env;
pub mod envelope;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod invocation_logging;
pub mod leak;
pub mod metadata;
pub mod records;
pub mod render;
pub mod store;
pub mod syntax;
pub mod telemetry;
pub mod template;
pub mod tenant;

/// `N` random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use aes_gcm::aead::OsRng;
    use aes_gcm::aead::rand_core::RngCore;
    let mut buf = [0u8; N];
    OsRng.fill_bytes(&mut buf);
    buf
}

/// `N` random bytes from the OS, as lowercase hex.
pub fn random_hex<const N: usize>() -> String {
    hex::encode(random_bytes::<N>())
}
