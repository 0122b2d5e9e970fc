//! Retrieval as a template version declares it, and the messages between invoke and
//! retrieve-context: which collections a version may search, and the references to sealed
//! chunks that come back (never their text).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::context::collection::{ChunkId, CollectionError, CollectionId, Owner};
use crate::envelope::Sealed;

/// Most chunks a request may ask for.
pub const MAX_K: u32 = 20;
/// Longest query embedded, in characters (Titan V2 takes 50,000; a question is far shorter).
pub const MAX_QUERY_CHARS: usize = 2_000;

/// A collection as a template names it: `isv:NAME` (the ISV's own) or `tenant:NAME` (the
/// calling tenant's collection of that name; never another tenant's).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CollectionName {
    pub isv: bool,
    pub name: String,
}

impl TryFrom<String> for CollectionName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (isv, name) = match s.split_once(':') {
            Some(("isv", name)) => (true, name),
            Some(("tenant", name)) => (false, name),
            _ => return Err(format!("collection {s:?} is not isv:NAME or tenant:NAME")),
        };
        // The name rules of CollectionId, checked once here.
        CollectionId::new(Owner::Isv, name).map_err(|e| e.to_string())?;
        Ok(Self {
            isv,
            name: name.to_owned(),
        })
    }
}

impl From<CollectionName> for String {
    fn from(c: CollectionName) -> String {
        c.to_string()
    }
}

impl std::fmt::Display for CollectionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let owner = if self.isv { "isv" } else { "tenant" };
        write!(f, "{owner}:{}", self.name)
    }
}

impl CollectionName {
    /// The collection this name means for `tenant`.
    pub fn resolve(&self, tenant: &str) -> Result<CollectionId, CollectionError> {
        let owner = match self.isv {
            true => Owner::Isv,
            false => Owner::Tenant(tenant.to_owned()),
        };
        CollectionId::new(owner, &self.name)
    }
}

/// Where retrieved chunks go in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// ISV chunks in ISV blocks of the system prompt, tenant chunks as tenant context blocks in
    /// the last user message.
    #[default]
    System,
    /// Both in the last user message, each in blocks of its owner's kind, before the user's text.
    Message,
}

/// What a template version declares about retrieval (`[retrieval]` in its file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalSettings {
    /// The collections searched (`isv:NAME`, `tenant:NAME`).
    pub collections: Vec<CollectionName>,
    /// The variable whose value is the query.
    pub query: String,
    /// Chunks retrieved, at most.
    #[serde(default = "default_k")]
    pub k: u32,
    /// Lowest cosine score kept.
    #[serde(default = "default_min_score")]
    pub min_score: f32,
    /// Characters of chunk text placed in the prompt, at most (best chunks first).
    #[serde(default = "default_max_chars")]
    pub max_chars: usize,
    #[serde(default)]
    pub placement: Placement,
}

fn default_k() -> u32 {
    4
}

fn default_min_score() -> f32 {
    0.2
}

fn default_max_chars() -> usize {
    6_000
}

/// Why a retrieval declaration was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RetrievalSettingsError {
    #[error("retrieval.collections must name 1 to 8 distinct collections")]
    Collections,
    #[error("retrieval.k must be between 1 and {MAX_K}")]
    K,
    #[error("retrieval.min_score must be between -1 and 1")]
    MinScore,
    #[error("retrieval.max_chars must be between 1 and 100000")]
    MaxChars,
}

impl RetrievalSettings {
    pub fn check(&self) -> Result<(), RetrievalSettingsError> {
        let mut distinct = self.collections.clone();
        distinct.sort();
        distinct.dedup();
        if self.collections.is_empty()
            || self.collections.len() > 8
            || distinct.len() != self.collections.len()
        {
            return Err(RetrievalSettingsError::Collections);
        }
        if !(1..=MAX_K).contains(&self.k) {
            return Err(RetrievalSettingsError::K);
        }
        if !(-1.0..=1.0).contains(&self.min_score) {
            return Err(RetrievalSettingsError::MinScore);
        }
        if !(1..=100_000).contains(&self.max_chars) {
            return Err(RetrievalSettingsError::MaxChars);
        }
        Ok(())
    }
}

/// invoke → retrieve-context. The tenant is invoke's (from the authorizer), the template
/// version the one it is rendering; retrieve-context checks both before it searches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrieveRequest {
    pub tenant_id: String,
    pub template_id: String,
    pub version: u32,
    pub query: String,
    pub collections: Vec<CollectionName>,
    pub k: u32,
    pub min_score: f32,
}

/// A sealed chunk as it travels: its ciphertext and wrapped data key, base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedChunk {
    pub ciphertext: String,
    pub wrapped_key: String,
}

impl From<&Sealed> for SealedChunk {
    fn from(s: &Sealed) -> Self {
        Self {
            ciphertext: STANDARD.encode(&s.ciphertext),
            wrapped_key: STANDARD.encode(&s.wrapped_key),
        }
    }
}

impl SealedChunk {
    pub fn sealed(&self) -> Option<Sealed> {
        Some(Sealed {
            ciphertext: STANDARD.decode(&self.ciphertext).ok()?,
            wrapped_key: STANDARD.decode(&self.wrapped_key).ok()?,
        })
    }
}

/// One retrieved chunk: whose, which, how close, and its text still sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub collection: CollectionName,
    pub chunk_id: String,
    pub score: f32,
    pub sealed: SealedChunk,
}

impl ChunkRef {
    pub fn id(&self) -> Option<ChunkId> {
        self.chunk_id.parse().ok()
    }
}

/// retrieve-context → invoke: the best chunks across the collections, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrieveResponse {
    pub chunks: Vec<ChunkRef>,
    /// Tokens the query's embedding counted, when the model says.
    pub query_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names_name_an_owner_and_nothing_else() {
        let isv: CollectionName = serde_json::from_str("\"isv:kb\"").unwrap();
        assert!(isv.isv);
        let own: CollectionName = serde_json::from_str("\"tenant:docs\"").unwrap();
        assert_eq!(
            own.resolve("acme").unwrap(),
            CollectionId::new(Owner::Tenant("acme".into()), "docs").unwrap()
        );
        assert_eq!(serde_json::to_string(&own).unwrap(), "\"tenant:docs\"");
        for bad in [
            "kb",
            "tenant:globex/docs",
            "tenant:globex:docs",
            "isv:",
            "other:kb",
            "tenant:../x",
        ] {
            assert!(
                serde_json::from_str::<CollectionName>(&format!("{bad:?}")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn declarations_are_bounded() {
        let settings = |k, collections: &[&str]| RetrievalSettings {
            collections: collections
                .iter()
                .map(|c| c.to_string().try_into().unwrap())
                .collect(),
            query: "question".into(),
            k,
            min_score: 0.2,
            max_chars: 1000,
            placement: Placement::System,
        };
        assert_eq!(settings(4, &["isv:kb", "tenant:docs"]).check(), Ok(()));
        assert_eq!(
            settings(0, &["isv:kb"]).check(),
            Err(RetrievalSettingsError::K)
        );
        assert_eq!(
            settings(21, &["isv:kb"]).check(),
            Err(RetrievalSettingsError::K)
        );
        assert_eq!(
            settings(4, &["isv:kb", "isv:kb"]).check(),
            Err(RetrievalSettingsError::Collections)
        );
        assert_eq!(
            settings(4, &[]).check(),
            Err(RetrievalSettingsError::Collections)
        );
    }
}
