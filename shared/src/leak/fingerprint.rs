//! The fingerprint format: the keyed hashes of a template version's words, of its neighbouring
//! words and of its runs of `min_span` words, sealed beside the version with its leak-guard
//! settings (versioned: `PSF3`); and the caller's own text, kept as its exact words.

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use super::hash::WordHasher;
use super::{LeakPolicy, LeakSettings, MIN_SPAN_RANGE, R};
use crate::syntax::{Token, tokens};

pub(super) type IdentityHashSet = HashSet<u64, BuildHasherDefault<Identity>>;

/// A set of hashes with a bit filter in front: most values a scan looks up are not in the set,
/// and one bit of a small table answers for them without probing the set.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct HashFilterSet {
    pub(super) set: IdentityHashSet,
    /// One bit per slot, about 16 slots per member: a value outside the set finds its bit clear
    /// about 15 times in 16.
    bits: Vec<u64>,
}

impl HashFilterSet {
    fn new(set: IdentityHashSet) -> Self {
        let slots = (set.len() * 16).next_power_of_two().max(64);
        let mut filter = Self {
            set,
            bits: vec![0; slots / 64],
        };
        for &v in &filter.set {
            let (word, bit) = filter.slot(v);
            filter.bits[word] |= bit;
        }
        filter
    }

    /// The filter bit of `v`: from the hash's upper half (the set's own probing uses the lower
    /// bits and the top seven).
    fn slot(&self, v: u64) -> (usize, u64) {
        let i = (v >> 24) as usize & (self.bits.len() * 64 - 1);
        (i / 64, 1 << (i % 64))
    }

    pub(super) fn contains(&self, v: u64) -> bool {
        let (word, bit) = self.slot(v);
        self.bits[word] & bit != 0 && self.set.contains(&v)
    }

    fn len(&self) -> usize {
        self.set.len()
    }
}

/// The values looked up are already uniform hashes: no need to hash them again.
#[derive(Default)]
pub(super) struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 values are hashed")
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The fingerprints of one template version, with its leak-guard settings (sealed with them, so
/// whoever scans with the fingerprints applies the version's policy and cannot be told another).
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprints {
    settings: LeakSettings,
    key: [u64; 2],
    pub(super) windows: HashFilterSet,
    pub(super) words: HashFilterSet,
    /// Every two consecutive template words (`h1·R + h2`), to follow a run through filler.
    pub(super) pairs: HashFilterSet,
}

impl std::fmt::Debug for Fingerprints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fingerprints")
            .field("settings", &self.settings)
            .field("windows", &self.windows.len())
            .field("words", &self.words.len())
            .field("pairs", &self.pairs.len())
            .finish_non_exhaustive()
    }
}

/// The key could reveal which words the template uses: wiped when dropped.
impl Drop for Fingerprints {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed fingerprints")]
pub struct MalformedFingerprints;

const MAGIC: &[u8; 4] = b"PSF3";
/// The format before the policy was sealed with the fingerprints: read with the `block` policy.
const MAGIC_WITHOUT_POLICY: &[u8; 4] = b"PSF2";

/// The polynomial of a run extended by one word hash; of two words, their pair.
pub(super) fn extend(run: u64, word: u64) -> u64 {
    run.wrapping_mul(R).wrapping_add(word)
}

/// The polynomial of a run of word hashes x0..x(n-1): `Σ xj·R^(n-1-j)`.
pub(super) fn polynomial(run: impl Iterator<Item = u64>) -> u64 {
    run.fold(0, extend)
}

impl Fingerprints {
    /// Fingerprints of ISV text given as parts, in the order the model reads them (the template's
    /// system text and messages). A template's text is its literal text between tags and the
    /// string literals inside tags (see [`pieces`]); the end of one part and the start of the
    /// next are one run, and a tag (a value computed at render time) ends a run.
    pub fn of_template<'a>(
        parts: impl IntoIterator<Item = &'a str>,
        settings: LeakSettings,
        key: [u8; 16],
    ) -> Self {
        Self::of_runs(parts.into_iter().flat_map(pieces), settings, key)
    }

    /// Fingerprints of ISV text as one request sent it to the model (its ISV blocks in order,
    /// `None` where a block that is not the ISV's ends a run), under a fresh key: what the
    /// template computed at render time (filters, concatenation, loops), which no fingerprint
    /// sealed from the template's source can foresee. Scanned beside the sealed fingerprints
    /// ([`Scanner::with_sent`]), never merged into them, so request data cannot change how the
    /// sealed ones match.
    pub fn of_sent<'t>(
        pieces: impl IntoIterator<Item = Option<&'t str>>,
        settings: LeakSettings,
    ) -> Self {
        Self::of_runs(pieces, settings, crate::random_bytes())
    }

    /// Fingerprints of text pieces in reading order, `None` ending a run.
    fn of_runs<S: AsRef<str>>(
        pieces: impl IntoIterator<Item = Option<S>>,
        settings: LeakSettings,
        key: [u8; 16],
    ) -> Self {
        let key = [
            u64::from_le_bytes(key[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(key[8..].try_into().expect("8 bytes")),
        ];
        let mut runs = Runs::new(key, settings.min_span);
        for piece in pieces {
            match piece {
                Some(text) => runs.text(text.as_ref()),
                None => runs.end(),
            }
        }
        Self::from_sets(settings, key, runs.finish())
    }

    fn from_sets(settings: LeakSettings, key: [u64; 2], sets: [IdentityHashSet; 3]) -> Self {
        let [windows, words, pairs] = sets.map(HashFilterSet::new);
        Self {
            settings,
            key,
            windows,
            words,
            pairs,
        }
    }

    pub fn min_span(&self) -> u32 {
        self.settings.min_span
    }

    /// The leak-guard settings sealed with these fingerprints.
    pub fn settings(&self) -> LeakSettings {
        self.settings
    }

    /// What the version's guard does with a reply that repeats it.
    pub fn policy(&self) -> LeakPolicy {
        self.settings.policy
    }

    /// How many runs of words are fingerprinted.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.len() == 0
    }

    /// A compact binary form, to be sealed before it is stored: magic, min span, policy (0 block,
    /// 1 redact), key, then the window, word and pair hashes (sorted), little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let hashes = self.windows.len() + self.words.len() + self.pairs.len();
        let mut out = Vec::with_capacity(37 + 8 * hashes);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.settings.min_span.to_le_bytes());
        out.push(match self.settings.policy {
            LeakPolicy::Block => 0,
            LeakPolicy::Redact => 1,
        });
        out.extend_from_slice(&self.key[0].to_le_bytes());
        out.extend_from_slice(&self.key[1].to_le_bytes());
        for set in [&self.windows, &self.words, &self.pairs] {
            let mut sorted: Vec<u64> = set.set.iter().copied().collect();
            sorted.sort_unstable();
            out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
            for v in sorted {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MalformedFingerprints> {
        let mut r = Reader(bytes);
        let with_policy = match r.take(4)? {
            magic if magic == MAGIC => true,
            magic if magic == MAGIC_WITHOUT_POLICY => false,
            _ => return Err(MalformedFingerprints),
        };
        let min_span = u32::from_le_bytes(r.array()?);
        let policy = match with_policy.then(|| r.array::<1>()).transpose()? {
            None | Some([0]) => LeakPolicy::Block,
            Some([1]) => LeakPolicy::Redact,
            Some(_) => return Err(MalformedFingerprints),
        };
        let key = [
            u64::from_le_bytes(r.array()?),
            u64::from_le_bytes(r.array()?),
        ];
        let mut sets: [IdentityHashSet; 3] = Default::default();
        for set in &mut sets {
            let n = u32::from_le_bytes(r.array()?) as usize;
            if n > r.0.len() / 8 {
                return Err(MalformedFingerprints);
            }
            set.reserve(n);
            for _ in 0..n {
                set.insert(u64::from_le_bytes(r.array()?));
            }
        }
        if !r.0.is_empty() || !MIN_SPAN_RANGE.contains(&min_span) {
            return Err(MalformedFingerprints);
        }
        Ok(Self::from_sets(
            LeakSettings { policy, min_span },
            key,
            sets,
        ))
    }

    pub(super) fn hasher(&self) -> WordHasher {
        WordHasher::new(self.key)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MalformedFingerprints> {
        if self.0.len() < n {
            return Err(MalformedFingerprints);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MalformedFingerprints> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
}

/// A template part's ISV text in the order the model reads it, `None` where a tag (a value
/// computed at render time) ends a run: the literal text between tags, and the string literals
/// inside tags (`{{ "…" }}`, `{% set x = "…" %}`, filter arguments, list items), which reach the
/// model when rendered as much as text outside tags does. A tag's string literals are one run of
/// their own (`"a " ~ "b"` renders as one).
fn pieces(source: &str) -> Vec<Option<Cow<'_, str>>> {
    let mut out = Vec::new();
    for token in tokens(source) {
        match token {
            Token::Text(text) => out.push(Some(text.into())),
            Token::Expression(tag) | Token::Statement(tag) => {
                out.push(None);
                if !tag.strings.is_empty() {
                    out.extend(tag.strings.into_iter().map(Some));
                    out.push(None);
                }
            }
        }
    }
    out
}

/// What the caller sent (its input and documents, as sent to the model), as the windows of
/// `min_span` exact words it holds. Words are compared as written (letters and digits,
/// lowercased), never in the scanner's canonical forms: no look-alike, shift or reversal of the
/// caller's text, no other single letter, counts as the caller's.
pub struct KnownText {
    min_span: usize,
    windows: HashSet<u64>,
    state: std::hash::RandomState,
}

impl KnownText {
    pub fn of<'t>(texts: impl IntoIterator<Item = &'t str>, min_span: u32) -> Self {
        let state = std::hash::RandomState::new();
        let min_span = min_span as usize;
        let mut windows = HashSet::new();
        for text in texts {
            let words = exact_words(text);
            windows.extend(words.windows(min_span).map(|w| state.hash_one(w)));
        }
        Self {
            min_span,
            windows,
            state,
        }
    }

    /// Whether every run of `min_span` words of `span` is a run of the caller's text: then no
    /// run of it is one the caller did not send.
    pub(super) fn covers(&self, span: &str) -> bool {
        let words = exact_words(span);
        words.len() >= self.min_span
            && words
                .windows(self.min_span)
                .all(|w| self.windows.contains(&self.state.hash_one(w)))
    }
}

fn exact_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Runs of ISV words being fingerprinted: every word, every pair of neighbours and every window
/// of `min_span` words of each run.
struct Runs {
    hasher: WordHasher,
    min_span: usize,
    run: Vec<u64>,
    sets: [IdentityHashSet; 3],
}

impl Runs {
    fn new(key: [u64; 2], min_span: u32) -> Self {
        Self {
            hasher: WordHasher::new(key),
            min_span: min_span as usize,
            run: Vec::new(),
            sets: Default::default(),
        }
    }

    /// Continues the current run with the words of `text`.
    fn text(&mut self, text: &str) {
        let run = &mut self.run;
        self.hasher.for_each(text, |_, _, _, h| run.push(h));
    }

    /// Ends the current run: its words, pairs and windows are fingerprinted.
    fn end(&mut self) {
        let [windows, words, pairs] = &mut self.sets;
        words.extend(self.run.iter());
        pairs.extend(self.run.windows(2).map(|pair| extend(pair[0], pair[1])));
        windows.extend(
            self.run
                .windows(self.min_span)
                .map(|window| polynomial(window.iter().copied())),
        );
        self.run.clear();
    }

    /// The window, word and pair sets.
    fn finish(mut self) -> [IdentityHashSet; 3] {
        self.end();
        self.sets
    }
}
