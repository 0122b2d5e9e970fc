//! Collections: who owns one (the ISV, or one tenant), what it is called, how its chunks are
//! named, what each sealed part of it is bound to, and the byte form of a document's vectors.

use crate::envelope::EncryptionContext;
use crate::template::is_id;

/// Whose documents a collection holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// The ISV's own knowledge: as secret as its templates.
    Isv,
    /// One tenant's documents.
    Tenant(String),
}

impl Owner {
    /// `isv`, or `tenant` for any tenant (the tenant's id is a field of its own).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Isv => "isv",
            Self::Tenant(_) => "tenant",
        }
    }

    pub fn tenant(&self) -> Option<&str> {
        match self {
            Self::Isv => None,
            Self::Tenant(id) => Some(id),
        }
    }
}

/// A collection, named within its owner: two tenants' `docs` are two collections.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CollectionId {
    pub owner: Owner,
    pub name: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CollectionError {
    #[error("collection name {0:?} is not 1 to 64 letters, digits, '.', '_' or '-'")]
    Name(String),
    #[error("tenant id {0:?} is not 1 to 64 letters, digits, '.', '_' or '-'")]
    Tenant(String),
}

impl CollectionId {
    pub fn new(owner: Owner, name: &str) -> Result<Self, CollectionError> {
        if let Owner::Tenant(id) = &owner
            && !is_id(id)
        {
            return Err(CollectionError::Tenant(id.clone()));
        }
        if !is_id(name) {
            return Err(CollectionError::Name(name.to_owned()));
        }
        Ok(Self {
            owner,
            name: name.to_owned(),
        })
    }

    /// The collection's partition in the context table, and its prefix in the vector store:
    /// `isv/NAME` or `tenant/ID/NAME` (neither part can hold a `/`).
    pub fn path(&self) -> String {
        match &self.owner {
            Owner::Isv => format!("isv/{}", self.name),
            Owner::Tenant(id) => format!("tenant/{id}/{}", self.name),
        }
    }

    /// What the chunk texts of one generation of a document are sealed under: ISV text under
    /// the purpose `isv-context`, a tenant's under `tenant-context` with the tenant named. Each
    /// chunk adds its index ([`Self::chunk_context`]).
    pub fn text_context(&self, document: &DocumentGeneration) -> EncryptionContext {
        let ctx = match &self.owner {
            Owner::Isv => EncryptionContext::purpose("isv-context"),
            Owner::Tenant(id) => EncryptionContext::purpose("tenant-context").with("tenant", id),
        };
        document.bind(ctx.with("collection", &self.name))
    }

    /// What one chunk's text is sealed under: moved to another chunk, document or collection,
    /// it does not open.
    pub fn chunk_context(&self, chunk: &ChunkId) -> EncryptionContext {
        self.text_context(&chunk.document)
            .with("chunk", chunk.index.to_string())
    }

    /// What a document generation's vectors are sealed under (a key of their own).
    pub fn vector_context(&self, document: &DocumentGeneration) -> EncryptionContext {
        let ctx = EncryptionContext::purpose("vectors").with("owner", self.owner.kind());
        let ctx = match &self.owner {
            Owner::Isv => ctx,
            Owner::Tenant(id) => ctx.with("tenant", id),
        };
        document.bind(ctx.with("collection", &self.name))
    }

    /// What the fingerprints of an ISV document generation are sealed under.
    pub fn fingerprint_context(&self, document: &DocumentGeneration) -> EncryptionContext {
        document.bind(EncryptionContext::purpose("fingerprints").with("collection", &self.name))
    }
}

/// One ingestion of one document: its opaque id (names stay out of chunk ids, and so out of
/// logs) and how many times it has been ingested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentGeneration {
    pub document: DocumentKey,
    pub generation: u32,
}

/// A document's opaque id: 8 random bytes, given when it is first ingested.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentKey(pub [u8; 8]);

impl std::fmt::Debug for DocumentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for DocumentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::str::FromStr for DocumentKey {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut out = [0; 8];
        hex::decode_to_slice(s, &mut out).map_err(|_| ())?;
        Ok(Self(out))
    }
}

impl DocumentKey {
    pub fn random() -> Self {
        Self(crate::random_bytes())
    }
}

impl DocumentGeneration {
    fn bind(&self, ctx: EncryptionContext) -> EncryptionContext {
        ctx.with("document", self.document.to_string())
            .with("generation", self.generation.to_string())
    }
}

/// A chunk: `DOCUMENT.GENERATION.INDEX` (`3f9c0a1b2c3d4e5f.2.17`), unique within its collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId {
    pub document: DocumentGeneration,
    pub index: u32,
}

impl std::fmt::Display for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let DocumentGeneration {
            document,
            generation,
        } = self.document;
        write!(f, "{document}.{generation}.{}", self.index)
    }
}

impl std::str::FromStr for ChunkId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut parts = s.split('.');
        let (Some(doc), Some(generation), Some(index), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(());
        };
        let number = |p: &str| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
                .ok_or(())
        };
        Ok(Self {
            document: DocumentGeneration {
                document: doc.parse()?,
                generation: number(generation)?,
            },
            index: number(index)?,
        })
    }
}

const SEGMENT_MAGIC: &[u8; 4] = b"PSV1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed vector segment")]
pub struct MalformedSegment;

/// The vectors of one document generation, in chunk order, as stored (before sealing): magic,
/// dimensions and count (u32 LE each), then the values (f32 LE).
pub fn encode_segment(dimensions: u32, vectors: &[Vec<f32>]) -> Vec<u8> {
    let count = u32::try_from(vectors.len()).expect("a document has fewer than 2^32 chunks");
    let mut out = Vec::with_capacity(12 + vectors.len() * dimensions as usize * 4);
    out.extend_from_slice(SEGMENT_MAGIC);
    out.extend_from_slice(&dimensions.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for v in vectors {
        assert_eq!(v.len(), dimensions as usize, "vector of the wrong size");
        out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    }
    out
}

/// A segment's dimensions and its values, `count × dimensions` of them.
pub fn decode_segment(bytes: &[u8]) -> Result<(u32, Vec<f32>), MalformedSegment> {
    let (head, body) = bytes.split_at_checked(12).ok_or(MalformedSegment)?;
    if &head[..4] != SEGMENT_MAGIC {
        return Err(MalformedSegment);
    }
    let word = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
    let (dimensions, count) = (word(4), word(8));
    let values = dimensions as usize * count as usize;
    if dimensions == 0 || body.len() != values * 4 {
        return Err(MalformedSegment);
    }
    let values = body
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    Ok((dimensions, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(generation: u32) -> DocumentGeneration {
        DocumentGeneration {
            document: DocumentKey([0x3f, 0x9c, 0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]),
            generation,
        }
    }

    #[test]
    fn chunk_ids_read_back_and_refuse_anything_else() {
        let id = ChunkId {
            document: doc(2),
            index: 17,
        };
        assert_eq!(id.to_string(), "3f9c0a1b2c3d4e5f.2.17");
        assert_eq!(id.to_string().parse::<ChunkId>(), Ok(id));
        for bad in [
            "",
            "3f9c0a1b2c3d4e5f.2",
            "3f9c0a1b2c3d4e5f.2.17.1",
            "3f9c0a1b2c3d4e5f.+2.17",
            "3f9c0a1b2c3d4e5.2.17",
            "zz9c0a1b2c3d4e5f.2.17",
            "3f9c0a1b2c3d4e5f.2.99999999999",
        ] {
            assert_eq!(bad.parse::<ChunkId>(), Err(()), "{bad}");
        }
    }

    #[test]
    fn every_sealed_part_names_its_place() {
        let isv = CollectionId::new(Owner::Isv, "kb").unwrap();
        let acme = CollectionId::new(Owner::Tenant("acme".into()), "kb").unwrap();
        let chunk = |index| ChunkId {
            document: doc(1),
            index,
        };
        // Another chunk, generation, collection or owner: another context.
        let contexts = [
            isv.chunk_context(&chunk(0)),
            isv.chunk_context(&chunk(1)),
            isv.chunk_context(&ChunkId {
                document: doc(2),
                index: 0,
            }),
            acme.chunk_context(&chunk(0)),
            CollectionId::new(Owner::Tenant("globex".into()), "kb")
                .unwrap()
                .chunk_context(&chunk(0)),
            CollectionId::new(Owner::Isv, "kb2")
                .unwrap()
                .chunk_context(&chunk(0)),
            isv.vector_context(&doc(1)),
            acme.vector_context(&doc(1)),
            isv.fingerprint_context(&doc(1)),
        ];
        for (i, a) in contexts.iter().enumerate() {
            for b in &contexts[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(CollectionId::new(Owner::Isv, "a/b").is_err());
        assert!(CollectionId::new(Owner::Isv, "").is_err());
        assert!(CollectionId::new(Owner::Tenant("a/b".into()), "kb").is_err());
        assert_eq!(
            CollectionId::new(Owner::Tenant("acme".into()), "kb")
                .unwrap()
                .path(),
            "tenant/acme/kb"
        );
    }

    #[test]
    fn segments_round_trip_and_refuse_truncation() {
        let vectors = vec![vec![1.0, -2.5], vec![0.25, 3.0]];
        let bytes = encode_segment(2, &vectors);
        assert_eq!(decode_segment(&bytes), Ok((2, vec![1.0, -2.5, 0.25, 3.0])));
        assert_eq!(
            decode_segment(&bytes[..bytes.len() - 1]),
            Err(MalformedSegment)
        );
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert_eq!(decode_segment(&wrong), Err(MalformedSegment));
    }
}
