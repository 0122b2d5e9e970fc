//! Nearest chunks to a query, in memory: the search a warm retrieve-context runs over a
//! collection's vectors. Vectors are kept twice:
//!
//! - a binary code (one sign bit per dimension), compared to the query's by Hamming distance,
//!   which estimates the angle between them (sign random projections): a cheap first pass over
//!   every vector that keeps the closest few hundred;
//! - the unit-length floats, whose exact cosine with the query ranks those candidates. (int8
//!   values with a scale per vector, a quarter of the memory, were tried for this step in one run
//!   on the unit test's clustered 256-d vectors, where neighbours' cosines lie close together:
//!   their rounding reordered them and recall@10 against exact search fell to 0.988, under the
//!   0.99 target. To be measured again at full size.)
//!
//! Scores are cosines (vectors are normalised when the index is built, queries when searched).
//! [`exact`] is the reference the index is measured against. The first pass relies on the
//! nearest vectors being clearly nearer than the rest, as they are for a query about something
//! the collection holds; for a query about nothing in it (every cosine near zero) its top results
//! can differ from exact search's, which a minimum score then drops anyway.

/// The fewest candidates the first pass keeps, and how many per result asked for.
const MIN_CANDIDATES: usize = 256;
const CANDIDATES_PER_RESULT: usize = 32;

/// One result: the vector's position in the index and its cosine with the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub index: usize,
    pub score: f32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    #[error("vectors must have a multiple of 64 dimensions, not {0}")]
    Dimensions(usize),
    #[error("vector {index} has {got} dimensions, not {expected}")]
    Length {
        index: usize,
        got: usize,
        expected: usize,
    },
    #[error("vector {0} is zero or not finite")]
    Degenerate(usize),
    #[error("{0} vectors do not fit in memory")]
    Capacity(usize),
}

/// A collection's vectors, ready to search. Its `Debug` shows sizes only: text can partly be
/// rebuilt from vectors.
#[derive(Clone)]
pub struct VectorIndex {
    dimensions: usize,
    /// `dimensions / 64` words of sign bits per vector.
    codes: Vec<u64>,
    /// `dimensions` unit-length values per vector.
    values: Vec<f32>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("vectors", &self.len())
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

impl VectorIndex {
    /// Builds the index of `vectors`, each of `dimensions` values.
    pub fn build<'a>(
        dimensions: usize,
        vectors: impl IntoIterator<Item = &'a [f32]>,
    ) -> Result<Self, IndexError> {
        let vectors = vectors.into_iter();
        let mut index = Self::with_capacity(dimensions, vectors.size_hint().0)?;
        index.extend(vectors)?;
        Ok(index)
    }

    /// An empty index for vectors of `dimensions` values, with room for `capacity` of them.
    pub fn with_capacity(dimensions: usize, capacity: usize) -> Result<Self, IndexError> {
        if dimensions == 0 || !dimensions.is_multiple_of(64) {
            return Err(IndexError::Dimensions(dimensions));
        }
        let mut index = Self {
            dimensions,
            codes: Vec::new(),
            values: Vec::new(),
        };
        // The count comes from stored data: too large is an error, not an abort.
        let values = capacity.checked_mul(dimensions);
        values
            .and_then(|n| index.values.try_reserve_exact(n).ok())
            .and_then(|()| {
                index
                    .codes
                    .try_reserve_exact(capacity * (dimensions / 64))
                    .ok()
            })
            .ok_or(IndexError::Capacity(capacity))?;
        Ok(index)
    }

    /// Adds `vectors` after those the index holds (a collection loaded piece by piece).
    pub fn extend<'a>(
        &mut self,
        vectors: impl IntoIterator<Item = &'a [f32]>,
    ) -> Result<(), IndexError> {
        let dimensions = self.dimensions;
        for vector in vectors {
            let i = self.len();
            if vector.len() != dimensions {
                return Err(IndexError::Length {
                    index: i,
                    got: vector.len(),
                    expected: dimensions,
                });
            }
            let norm = norm(vector).ok_or(IndexError::Degenerate(i))?;
            self.values.extend(vector.iter().map(|x| x / norm));
            let unit = &self.values[i * dimensions..];
            self.codes.extend(signs(unit));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.values.len() / self.dimensions
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The `k` vectors closest to `query` with a cosine of at least `min_score`, best first. A
    /// query of the wrong length, or zero, finds nothing.
    pub fn search(&self, query: &[f32], k: usize, min_score: f32) -> Vec<Hit> {
        if k == 0 || query.len() != self.dimensions || self.is_empty() {
            return Vec::new();
        }
        let Some(query) = normalised(query) else {
            return Vec::new();
        };
        let words = self.dimensions / 64;
        let query_code: Vec<u64> = signs(&query).collect();
        let mut candidates: Vec<(u32, u32)> = self
            .codes
            .chunks_exact(words)
            .enumerate()
            .map(|(i, code)| {
                let distance = code
                    .iter()
                    .zip(&query_code)
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum::<u32>();
                (distance, i as u32)
            })
            .collect();
        let keep = k.saturating_mul(CANDIDATES_PER_RESULT).max(MIN_CANDIDATES);
        if candidates.len() > keep {
            candidates.select_nth_unstable(keep - 1);
            candidates.truncate(keep);
        }
        let mut hits: Vec<Hit> = candidates
            .into_iter()
            .map(|(_, i)| {
                let i = i as usize;
                let values = &self.values[i * self.dimensions..(i + 1) * self.dimensions];
                Hit {
                    index: i,
                    score: dot(values, &query),
                }
            })
            .filter(|hit| hit.score >= min_score)
            .collect();
        best_first(&mut hits, k);
        hits
    }
}

/// The `k` closest of `vectors` to `query` by exact cosine, best first: what the index is
/// measured against.
pub fn exact(vectors: &[Vec<f32>], query: &[f32], k: usize) -> Vec<Hit> {
    let Some(query) = normalised(query).filter(|_| k > 0) else {
        return Vec::new();
    };
    let mut hits: Vec<Hit> = vectors
        .iter()
        .enumerate()
        .filter_map(|(index, v)| {
            let score = dot(&normalised(v)?, &query);
            Some(Hit { index, score })
        })
        .collect();
    best_first(&mut hits, k);
    hits
}

/// Keeps the `k` best hits, best first (ties by position).
fn best_first(hits: &mut Vec<Hit>, k: usize) {
    let order = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index));
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, order);
        hits.truncate(k);
    }
    hits.sort_unstable_by(order);
}

/// The vector's length; `None` for a zero or non-finite vector.
fn norm(vector: &[f32]) -> Option<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm.is_finite() && norm > 0.0).then_some(norm)
}

/// The vector at unit length; `None` for a zero or non-finite vector.
fn normalised(vector: &[f32]) -> Option<Vec<f32>> {
    let norm = norm(vector)?;
    Some(vector.iter().map(|x| x / norm).collect())
}

/// Sign bits, 64 to a word.
fn signs(vector: &[f32]) -> impl Iterator<Item = u64> + '_ {
    vector.chunks(64).map(|chunk| {
        chunk
            .iter()
            .enumerate()
            .fold(0u64, |word, (bit, &x)| word | (u64::from(x > 0.0) << bit))
    })
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_built_piece_by_piece_is_the_index_built_at_once() {
        let vectors = crate::fixtures::clustered_vectors(3, 10, 2, 64);
        let whole = VectorIndex::build(64, vectors.iter().map(Vec::as_slice)).unwrap();
        let mut pieces = VectorIndex::with_capacity(64, 1).unwrap();
        for piece in vectors.chunks(3) {
            pieces.extend(piece.iter().map(Vec::as_slice)).unwrap();
        }
        assert_eq!((pieces.codes, pieces.values), (whole.codes, whole.values));
        let mut bad = VectorIndex::with_capacity(64, 0).unwrap();
        bad.extend([&[1.0; 64][..]]).unwrap();
        assert_eq!(
            bad.extend([&[0.0; 64][..]]),
            Err(IndexError::Degenerate(1)),
            "positions count on from what the index holds"
        );
    }

    #[test]
    fn the_index_finds_what_exact_search_finds() {
        // Queries about the same topics as the documents.
        let mut vectors = crate::fixtures::clustered_vectors(7, 4050, 50, 256);
        let queries = vectors.split_off(4000);
        let index = VectorIndex::build(256, vectors.iter().map(Vec::as_slice)).unwrap();
        let (mut found, mut wanted) = (0, 0);
        for query in &queries {
            let truth: Vec<usize> = exact(&vectors, query, 10).iter().map(|h| h.index).collect();
            let got = index.search(query, 10, -1.0);
            assert_eq!(got.len(), 10);
            assert!(got.windows(2).all(|w| w[0].score >= w[1].score));
            found += got.iter().filter(|h| truth.contains(&h.index)).count();
            wanted += truth.len();
        }
        let recall = found as f64 / wanted as f64;
        assert!(recall >= 0.99, "recall@10 {recall}");
    }

    #[test]
    fn scores_are_cosines_and_the_minimum_score_is_kept() {
        let a = [1.0, 0.0].repeat(32);
        let b = [0.0, 1.0].repeat(32);
        let index = VectorIndex::build(64, [a.as_slice(), b.as_slice()]).unwrap();
        let hits = index.search(&a.iter().map(|x| x * 3.0).collect::<Vec<_>>(), 2, -1.0);
        assert_eq!(hits[0].index, 0);
        assert!((hits[0].score - 1.0).abs() < 0.01, "{hits:?}");
        assert!(hits[1].score.abs() < 0.01, "{hits:?}");
        assert_eq!(index.search(&a, 2, 0.5).len(), 1);
    }

    #[test]
    fn bad_vectors_and_queries_are_refused() {
        let v = vec![1.0; 64];
        assert_eq!(
            VectorIndex::build(100, [v.as_slice()]).unwrap_err(),
            IndexError::Dimensions(100)
        );
        assert_eq!(
            VectorIndex::build(64, [&v[..32]]).unwrap_err(),
            IndexError::Length {
                index: 0,
                got: 32,
                expected: 64
            }
        );
        let zero = vec![0.0; 64];
        let nan = vec![f32::NAN; 64];
        assert_eq!(
            VectorIndex::build(64, [v.as_slice(), zero.as_slice()]).unwrap_err(),
            IndexError::Degenerate(1)
        );
        assert!(VectorIndex::build(64, [nan.as_slice()]).is_err());
        let index = VectorIndex::build(64, [v.as_slice()]).unwrap();
        assert!(index.search(&zero, 1, -1.0).is_empty());
        assert!(index.search(&v[..32], 1, -1.0).is_empty());
        assert!(index.search(&v, 0, -1.0).is_empty());
        assert_eq!(index.search(&v, usize::MAX, -1.0).len(), 1);
        assert!(exact(std::slice::from_ref(&v), &v, 0).is_empty());
        assert_eq!(
            format!("{index:?}"),
            "VectorIndex { vectors: 1, dimensions: 64, .. }"
        );
    }
}
