//! Envelope encryption: one KMS data key per sealed object, AES-256-GCM locally, the wrapped key
//! stored beside the ciphertext. The same encryption context goes to KMS and, canonically encoded,
//! into AES-GCM's associated data, so a ciphertext opens only under the identity it was sealed for.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

/// A plaintext AES-256 data key; wiped from memory when dropped.
pub type DataKey = Zeroizing<[u8; KEY_LEN]>;

/// What a ciphertext is bound to. Sent to KMS as the encryption context and, as canonical JSON
/// (keys sorted), used as AES-GCM associated data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EncryptionContext(BTreeMap<&'static str, String>);

impl EncryptionContext {
    /// The identity of one template version.
    pub fn template(template_id: &str, version: u32) -> Self {
        Self(BTreeMap::from([
            ("purpose", "template".to_owned()),
            ("template_id", template_id.to_owned()),
            ("version", version.to_string()),
        ]))
    }

    /// The fingerprints of one template version (a different key and purpose: whoever may open
    /// them cannot open the template).
    pub fn fingerprints(template_id: &str, version: u32) -> Self {
        Self(BTreeMap::from([
            ("purpose", "fingerprints".to_owned()),
            ("template_id", template_id.to_owned()),
            ("version", version.to_string()),
        ]))
    }

    /// The identity of one part of an object whose parts share a data key (the chunks of one
    /// document): the key's context and the part's own fields, so a part opens only in its place.
    pub fn with(mut self, field: &'static str, value: impl Into<String>) -> Self {
        self.0.insert(field, value.into());
        self
    }

    /// A context of `purpose` alone, to be narrowed with [`Self::with`].
    pub fn purpose(purpose: &'static str) -> Self {
        Self(BTreeMap::from([("purpose", purpose.to_owned())]))
    }

    fn associated_data(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).expect("a map of strings always serialises")
    }

    fn to_kms(&self) -> HashMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }
}

/// A sealed object as stored: `nonce || ciphertext || tag`, and the KMS-wrapped data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub wrapped_key: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// KMS could not be reached or refused for a reason other than the ciphertext itself.
    #[error("KMS {operation} failed")]
    Kms {
        operation: &'static str,
        #[source]
        source: Box<aws_sdk_kms::Error>,
    },
    /// The wrapped key or the ciphertext does not belong to this identity: tampered with, moved
    /// onto another item, or opened with the wrong context.
    #[error("ciphertext does not open under this identity")]
    Integrity,
    #[error("KMS returned a data key of unexpected length")]
    MalformedDataKey,
}

/// Encrypts `plaintext` under `key`, binding it to `ctx`.
pub fn encrypt(key: &DataKey, plaintext: &[u8], ctx: &EncryptionContext) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.as_slice().into());
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let aad = ctx.associated_data();
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .expect("AES-GCM encryption cannot fail for in-memory buffers of this size");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Decrypts what [`encrypt`] produced; fails unless `key` and `ctx` are the ones it was sealed with.
pub fn decrypt(
    key: &DataKey,
    ciphertext: &[u8],
    ctx: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if ciphertext.len() < NONCE_LEN {
        return Err(EnvelopeError::Integrity);
    }
    let (nonce, body) = ciphertext.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(key.as_slice().into());
    let aad = ctx.associated_data();
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Integrity)
}

/// Bounds on how long, and for how many decryptions, an unwrapped data key stays in memory.
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    pub max_age: Duration,
    pub max_uses: u32,
    pub max_entries: usize,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(300),
            max_uses: 1_000,
            max_entries: 64,
        }
    }
}

struct CachedKey {
    key: DataKey,
    loaded_at: Instant,
    uses: u32,
}

/// Unwrapped data keys, looked up by wrapped key and encryption context together. Pure: the caller
/// supplies the time, so the bounds are testable without sleeping.
pub struct KeyCache {
    policy: CachePolicy,
    entries: HashMap<Vec<u8>, CachedKey>,
}

impl KeyCache {
    pub fn new(policy: CachePolicy) -> Self {
        Self {
            policy,
            entries: HashMap::new(),
        }
    }

    fn cache_key(wrapped_key: &[u8], ctx: &EncryptionContext) -> Vec<u8> {
        let mut key = ctx.associated_data();
        key.push(0);
        key.extend_from_slice(wrapped_key);
        key
    }

    /// The cached key, counting one use; `None` if absent, too old or used up (and then evicted).
    pub fn get(
        &mut self,
        wrapped_key: &[u8],
        ctx: &EncryptionContext,
        now: Instant,
    ) -> Option<DataKey> {
        let id = Self::cache_key(wrapped_key, ctx);
        let entry = self.entries.get_mut(&id)?;
        if !self.policy.is_fresh(entry, now) {
            self.entries.remove(&id);
            return None;
        }
        entry.uses += 1;
        Some(entry.key.clone())
    }

    /// Caches a freshly unwrapped key, evicting stale entries and then the oldest when full.
    pub fn insert(
        &mut self,
        wrapped_key: &[u8],
        ctx: &EncryptionContext,
        key: DataKey,
        now: Instant,
    ) {
        if self.policy.max_entries == 0 || self.policy.max_uses == 0 {
            return;
        }
        let policy = self.policy;
        self.entries.retain(|_, e| policy.is_fresh(e, now));
        if self.entries.len() >= policy.max_entries
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.loaded_at)
                .map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        self.entries.insert(
            Self::cache_key(wrapped_key, ctx),
            CachedKey {
                key,
                loaded_at: now,
                uses: 1,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl CachePolicy {
    fn is_fresh(&self, entry: &CachedKey, now: Instant) -> bool {
        now.saturating_duration_since(entry.loaded_at) < self.max_age && entry.uses < self.max_uses
    }
}

/// One data key, unwrapped, for sealing the parts of one object; wiped when dropped.
pub struct PartSealer {
    key: DataKey,
    wrapped_key: Vec<u8>,
}

impl PartSealer {
    /// Seals one part under the data key, bound to `ctx` (the key's context and the part's own
    /// fields; the same context opens it).
    pub fn seal(&self, plaintext: &[u8], ctx: &EncryptionContext) -> Sealed {
        Sealed {
            ciphertext: encrypt(&self.key, plaintext, ctx),
            wrapped_key: self.wrapped_key.clone(),
        }
    }
}

/// Seals and opens objects with KMS data keys under one KMS key.
pub struct Envelope {
    kms: aws_sdk_kms::Client,
    key_id: String,
    cache: Mutex<KeyCache>,
    kms_decrypts: AtomicU64,
}

impl Envelope {
    pub fn new(kms: aws_sdk_kms::Client, key_id: impl Into<String>, policy: CachePolicy) -> Self {
        Self {
            kms,
            key_id: key_id.into(),
            cache: Mutex::new(KeyCache::new(policy)),
            kms_decrypts: AtomicU64::new(0),
        }
    }

    /// An envelope under another KMS key, through the same client, with a data-key cache of its
    /// own that goes when it does. Made for one request, it asks KMS at least once per request,
    /// so the key's policy decides each time (a tenant's own key, which the tenant may switch
    /// off), and once per data key within it (the chunks of one document share theirs).
    pub fn per_request(&self, key_id: impl Into<String>) -> Self {
        Self::new(self.kms.clone(), key_id, CachePolicy::default())
    }

    /// Encrypts `plaintext` under a new data key bound to `ctx`.
    pub async fn seal(
        &self,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Sealed, EnvelopeError> {
        Ok(self.data_key(ctx).await?.seal(plaintext, ctx))
    }

    /// A new data key bound to `ctx` in KMS, for sealing the parts of one object (each part's
    /// context extends `ctx`) with one KMS call.
    pub async fn data_key(&self, ctx: &EncryptionContext) -> Result<PartSealer, EnvelopeError> {
        let out = self
            .kms
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(ctx.to_kms()))
            .send()
            .await
            .map_err(|e| EnvelopeError::Kms {
                operation: "GenerateDataKey",
                source: Box::new(e.into()),
            })?;
        let key = data_key(out.plaintext().map(Blob::as_ref))?;
        let wrapped_key = out
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or(EnvelopeError::MalformedDataKey)?;
        Ok(PartSealer { key, wrapped_key })
    }

    /// Decrypts a sealed object, unwrapping its data key through the cache.
    pub async fn open(
        &self,
        sealed: &Sealed,
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        self.open_part(sealed, ctx, ctx).await
    }

    /// Decrypts one part sealed by a [`PartSealer`]: its data key unwrapped under `key_ctx`
    /// (through the cache), the part opened under `part_ctx`.
    pub async fn open_part(
        &self,
        sealed: &Sealed,
        key_ctx: &EncryptionContext,
        part_ctx: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        let cached = self.cache.lock().expect("key cache lock poisoned").get(
            &sealed.wrapped_key,
            key_ctx,
            Instant::now(),
        );
        let key = match cached {
            Some(key) => key,
            None => {
                let key = self.unwrap_key(&sealed.wrapped_key, key_ctx).await?;
                self.cache.lock().expect("key cache lock poisoned").insert(
                    &sealed.wrapped_key,
                    key_ctx,
                    key.clone(),
                    Instant::now(),
                );
                key
            }
        };
        decrypt(&key, &sealed.ciphertext, part_ctx)
    }

    /// How many times this envelope has asked KMS to unwrap a key (cache misses).
    pub fn kms_decrypts(&self) -> u64 {
        self.kms_decrypts.load(Ordering::Relaxed)
    }

    async fn unwrap_key(
        &self,
        wrapped_key: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<DataKey, EnvelopeError> {
        use aws_sdk_kms::operation::decrypt::DecryptError;
        self.kms_decrypts.fetch_add(1, Ordering::Relaxed);
        let out = self
            .kms
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped_key))
            .set_encryption_context(Some(ctx.to_kms()))
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(
                    DecryptError::InvalidCiphertextException(_)
                    | DecryptError::IncorrectKeyException(_),
                ) => EnvelopeError::Integrity,
                _ => EnvelopeError::Kms {
                    operation: "Decrypt",
                    source: Box::new(e.into()),
                },
            })?;
        data_key(out.plaintext().map(Blob::as_ref))
    }
}

fn data_key(bytes: Option<&[u8]>) -> Result<DataKey, EnvelopeError> {
    let bytes = bytes.ok_or(EnvelopeError::MalformedDataKey)?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(EnvelopeError::MalformedDataKey);
    }
    key.copy_from_slice(bytes);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> DataKey {
        Zeroizing::new([byte; KEY_LEN])
    }

    #[test]
    fn ciphertext_opens_under_its_own_key_and_context() {
        let ctx = EncryptionContext::template("greeting", 3);
        let sealed = encrypt(&key(7), b"You are a helpful assistant.", &ctx);
        let opened = decrypt(&key(7), &sealed, &ctx).unwrap();
        assert_eq!(opened.as_slice(), b"You are a helpful assistant.");
    }

    #[test]
    fn ciphertext_bound_to_another_identity_fails() {
        let sealed = encrypt(&key(7), b"secret", &EncryptionContext::template("a", 1));
        for other in [
            EncryptionContext::template("a", 2),
            EncryptionContext::template("b", 1),
        ] {
            assert!(matches!(
                decrypt(&key(7), &sealed, &other),
                Err(EnvelopeError::Integrity)
            ));
        }
    }

    #[test]
    fn wrong_key_or_tampered_ciphertext_fails() {
        let ctx = EncryptionContext::template("a", 1);
        let mut sealed = encrypt(&key(7), b"secret", &ctx);
        assert!(decrypt(&key(8), &sealed, &ctx).is_err());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(decrypt(&key(7), &sealed, &ctx).is_err());
        assert!(decrypt(&key(7), &sealed[..5], &ctx).is_err());
    }

    #[test]
    fn plaintext_never_appears_in_ciphertext() {
        let ctx = EncryptionContext::template("a", 1);
        let sealed = encrypt(&key(1), b"CANARY-PLAINTEXT-CANARY", &ctx);
        assert!(!sealed.windows(6).any(|w| w == b"CANARY"));
    }

    fn policy(max_age_secs: u64, max_uses: u32, max_entries: usize) -> CachePolicy {
        CachePolicy {
            max_age: Duration::from_secs(max_age_secs),
            max_uses,
            max_entries,
        }
    }

    #[test]
    fn cached_key_expires_after_max_age() {
        let ctx = EncryptionContext::template("a", 1);
        let mut cache = KeyCache::new(policy(60, 100, 8));
        let t0 = Instant::now();
        cache.insert(b"wrapped", &ctx, key(1), t0);
        assert!(
            cache
                .get(b"wrapped", &ctx, t0 + Duration::from_secs(59))
                .is_some()
        );
        assert!(
            cache
                .get(b"wrapped", &ctx, t0 + Duration::from_secs(60))
                .is_none()
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn cached_key_is_dropped_after_max_uses() {
        let ctx = EncryptionContext::template("a", 1);
        let mut cache = KeyCache::new(policy(60, 3, 8));
        let t0 = Instant::now();
        cache.insert(b"wrapped", &ctx, key(1), t0);
        // The unwrap that filled the cache was the first use.
        assert!(cache.get(b"wrapped", &ctx, t0).is_some());
        assert!(cache.get(b"wrapped", &ctx, t0).is_some());
        assert!(cache.get(b"wrapped", &ctx, t0).is_none());
    }

    #[test]
    fn cache_holds_at_most_max_entries_evicting_the_oldest() {
        let mut cache = KeyCache::new(policy(60, 100, 2));
        let t0 = Instant::now();
        let ctxs: Vec<_> = (1..=3)
            .map(|v| EncryptionContext::template("a", v))
            .collect();
        for (i, ctx) in ctxs.iter().enumerate() {
            cache.insert(b"w", ctx, key(1), t0 + Duration::from_secs(i as u64));
        }
        assert_eq!(cache.len(), 2);
        let now = t0 + Duration::from_secs(3);
        assert!(cache.get(b"w", &ctxs[0], now).is_none());
        assert!(cache.get(b"w", &ctxs[2], now).is_some());
    }

    #[test]
    fn cache_entry_is_bound_to_the_context() {
        let mut cache = KeyCache::new(CachePolicy::default());
        let t0 = Instant::now();
        cache.insert(b"w", &EncryptionContext::template("a", 1), key(1), t0);
        assert!(
            cache
                .get(b"w", &EncryptionContext::template("b", 1), t0)
                .is_none()
        );
    }

    #[test]
    fn data_keys_and_plaintexts_zeroize_on_drop() {
        fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>(_: &T) {}
        let ctx = EncryptionContext::template("a", 1);
        let mut k = key(9);
        zeroized_on_drop(&k);
        let opened = decrypt(&k, &encrypt(&k, b"secret", &ctx), &ctx).unwrap();
        zeroized_on_drop(&opened);
        // What drop runs, observed without reading freed memory.
        zeroize::Zeroize::zeroize(&mut *k);
        assert_eq!(*k, [0u8; KEY_LEN]);
    }
}
