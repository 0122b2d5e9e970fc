//! The leak guard's core: keyed fingerprints of ISV text, and a scanner that finds that text in a
//! model's reply, also when it is disguised.
//!
//! Fingerprints are computed once, when a template version is sealed: the keyed hash (SipHash-1-3
//! under a random per-version key) of every normalised word, and a polynomial of those hashes for
//! every run of `min_span` consecutive words. Without the key the set is a bag of random numbers;
//! it is stored sealed besides (see `FingerprintStore`), so it is never readable at rest either.
//!
//! The scanner turns a reply into the same words and looks every run up, forwards and backwards
//! (reversed text), among the words that belong to the template only (interleaved with filler),
//! inside letter-spaced runs (re-segmented into template words) and inside base64 and hex runs.
//! Case, Unicode look-alikes, punctuation, Markdown, Caesar shifts and reversed words are undone
//! by the word normalisation itself (`words`).

mod decode;
mod unescape;
mod words;

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher13;

use crate::syntax::{Token, tokens};
use words::{Normalised, Packed, for_each_word};

/// Fewest consecutive template words that count as a leak, unless a template says otherwise.
pub const DEFAULT_MIN_SPAN: u32 = 8;
/// Bounds of a template's `min_span`.
pub const MIN_SPAN_RANGE: std::ops::RangeInclusive<u32> = 4..=64;

/// Multiplier of the rolling polynomial over word hashes (odd, so invertible modulo 2^64).
const R: u64 = 0x9E37_79B9_7F4A_7C15;
/// Longest word tried when re-segmenting a letter-spaced run.
const MAX_WORD: usize = 24;
/// Shortest run of letters and digits that makes a stretch of text worth splitting into words
/// run together.
const LONG_WORD: usize = 12;
/// Longest letter-spaced run re-segmented.
const MAX_SPACED_RUN: usize = 4096;
/// Most filler words between two template words of an interleaved run.
const MAX_FILLER: usize = 3;
/// How deep escaped or encoded text inside escaped or encoded text is followed (JSON in JSON
/// holding base64 is three levels).
const MAX_DEPTH: u8 = 3;

/// What a template version does when a reply repeats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeakPolicy {
    /// The reply is withheld.
    #[default]
    Block,
    /// Leaked spans are replaced with a marker.
    Redact,
}

/// A template version's leak-guard settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakGuard {
    #[serde(default)]
    pub policy: LeakPolicy,
    /// Fewest consecutive template words that count as a leak.
    #[serde(default = "default_min_span")]
    pub min_span: u32,
}

impl Default for LeakGuard {
    fn default() -> Self {
        Self {
            policy: LeakPolicy::default(),
            min_span: DEFAULT_MIN_SPAN,
        }
    }
}

fn default_min_span() -> u32 {
    DEFAULT_MIN_SPAN
}

/// How leaked text was disguised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// In order: verbatim or near-verbatim (case, Unicode, punctuation, Markdown, shifted letters,
    /// reversed words).
    Text,
    /// Words in reverse order.
    Reversed,
    /// Template words in order with other words between them.
    Interleaved,
    /// One letter at a time.
    LetterSpaced,
    /// Words run together without spaces.
    Joined,
    /// Inside base64 or hex.
    Encoded,
    /// The request's canary.
    Canary,
}

impl Form {
    /// The name used in responses, records and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Reversed => "reversed",
            Self::Interleaved => "interleaved",
            Self::LetterSpaced => "letter_spaced",
            Self::Joined => "joined",
            Self::Encoded => "encoded",
            Self::Canary => "canary",
        }
    }
}

/// A leaked span of a scanned text. Offsets are bytes; the text itself is never kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub start: usize,
    pub len: usize,
    /// Share of the span's words that are template words in template order (0..=1).
    pub score: f32,
    pub form: Form,
}

/// What the guard did with a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardAction {
    /// Nothing of the template was found; the reply is unchanged.
    Passed,
    /// Leaked spans were replaced with [`REDACTION_MARKER`].
    Redacted,
    /// The reply was withheld.
    Withheld,
}

impl GuardAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Redacted => "redacted",
            Self::Withheld => "withheld",
        }
    }
}

/// What the guard found and did: counts and forms, never the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardReport {
    pub action: GuardAction,
    /// Leaked spans found.
    pub findings: usize,
    /// Their forms, each once, in order of first appearance.
    pub forms: Vec<Form>,
}

/// What a leaked span is replaced with.
pub const REDACTION_MARKER: &str = "[redacted: template text]";

type IdentityHashSet = HashSet<u64, BuildHasherDefault<Identity>>;

/// A set of hashes with a bit filter in front: most values a scan looks up are not in the set,
/// and one bit of a small table answers for them without probing the set.
#[derive(Clone, PartialEq, Eq)]
struct HashFilterSet {
    set: IdentityHashSet,
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

    fn contains(&self, v: u64) -> bool {
        let (word, bit) = self.slot(v);
        self.bits[word] & bit != 0 && self.set.contains(&v)
    }

    fn len(&self) -> usize {
        self.set.len()
    }
}

/// The values looked up are already uniform hashes: no need to hash them again.
#[derive(Default)]
struct Identity(u64);

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
    guard: LeakGuard,
    key: [u64; 2],
    windows: HashFilterSet,
    words: HashFilterSet,
    /// Every two consecutive template words (`h1·R + h2`), to follow a run through filler.
    pairs: HashFilterSet,
}

impl std::fmt::Debug for Fingerprints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fingerprints")
            .field("guard", &self.guard)
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
fn extend(run: u64, word: u64) -> u64 {
    run.wrapping_mul(R).wrapping_add(word)
}

/// The polynomial of a run of word hashes x0..x(n-1): `Σ xj·R^(n-1-j)`.
fn polynomial(run: impl Iterator<Item = u64>) -> u64 {
    run.fold(0, extend)
}

impl Fingerprints {
    /// Fingerprints of ISV text given as parts, in the order the model reads them (the template's
    /// system text and messages). A template's text is its literal text between tags and the
    /// string literals inside tags (see [`pieces`]); the end of one part and the start of the
    /// next are one run, and a tag (a value computed at render time) ends a run.
    pub fn of_template<'a>(
        parts: impl IntoIterator<Item = &'a str>,
        guard: LeakGuard,
        key: [u8; 16],
    ) -> Self {
        Self::of_runs(parts.into_iter().flat_map(pieces), guard, key)
    }

    /// Fingerprints of ISV text as one request sent it to the model (its ISV blocks in order,
    /// `None` where a block that is not the ISV's ends a run), under a fresh key: what the
    /// template computed at render time (filters, concatenation, loops), which no fingerprint
    /// sealed from the template's source can foresee. Scanned beside the sealed fingerprints
    /// ([`Scanner::with_sent`]), never merged into them, so request data cannot change how the
    /// sealed ones match.
    pub fn of_sent<'t>(
        pieces: impl IntoIterator<Item = Option<&'t str>>,
        guard: LeakGuard,
    ) -> Self {
        Self::of_runs(pieces, guard, crate::random_bytes())
    }

    /// Fingerprints of text pieces in reading order, `None` ending a run.
    fn of_runs<S: AsRef<str>>(
        pieces: impl IntoIterator<Item = Option<S>>,
        guard: LeakGuard,
        key: [u8; 16],
    ) -> Self {
        let key = [
            u64::from_le_bytes(key[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(key[8..].try_into().expect("8 bytes")),
        ];
        let mut runs = Runs::new(key, guard.min_span);
        for piece in pieces {
            match piece {
                Some(text) => runs.text(text.as_ref()),
                None => runs.end(),
            }
        }
        Self::from_sets(guard, key, runs.finish())
    }

    fn from_sets(guard: LeakGuard, key: [u64; 2], sets: [IdentityHashSet; 3]) -> Self {
        let [windows, words, pairs] = sets.map(HashFilterSet::new);
        Self {
            guard,
            key,
            windows,
            words,
            pairs,
        }
    }

    pub fn min_span(&self) -> u32 {
        self.guard.min_span
    }

    /// The leak-guard settings sealed with these fingerprints.
    pub fn guard(&self) -> LeakGuard {
        self.guard
    }

    /// What the version's guard does with a reply that repeats it.
    pub fn policy(&self) -> LeakPolicy {
        self.guard.policy
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
        out.extend_from_slice(&self.guard.min_span.to_le_bytes());
        out.push(match self.guard.policy {
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
        Ok(Self::from_sets(LeakGuard { policy, min_span }, key, sets))
    }

    fn hasher(&self) -> WordHasher {
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
    fn covers(&self, span: &str) -> bool {
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

/// Keyed hashes of canonical words.
struct WordHasher {
    sip: SipHasher13,
    /// SipHash's state after keying, for [`WordHasher::sip_packed`].
    keyed: [u64; 4],
}

impl WordHasher {
    fn new(key: [u64; 2]) -> Self {
        Self {
            sip: SipHasher13::new_with_keys(key[0], key[1]),
            keyed: [
                key[0] ^ 0x736f_6d65_7073_6575,
                key[1] ^ 0x646f_7261_6e64_6f6d,
                key[0] ^ 0x6c79_6765_6e65_7261,
                key[1] ^ 0x7465_6462_7974_6573,
            ],
        }
    }

    /// SipHash-1-3 of a packed word's bytes: the value `SipHasher13::hash` gives, computed from
    /// the word in a register, without the byte-slice handling. Most words are packed, so this
    /// is the scanner's hash.
    #[inline(always)]
    fn sip_packed(&self, word: Packed) -> u64 {
        let (bits, len) = word.to_be();
        self.sip_chunks(std::iter::once(bits), len)
    }

    /// SipHash-1-3 of a message of `len` bytes given as big-endian 8-byte chunks (the last one
    /// zero-padded): each chunk is one message block, the length block after them.
    #[inline(always)]
    fn sip_chunks(&self, chunks: impl Iterator<Item = u64>, len: usize) -> u64 {
        fn compress(v: &mut [u64; 4], block: u64) {
            v[3] ^= block;
            sip_round(v);
            v[0] ^= block;
        }
        let mut v = self.keyed;
        let mut tail = 0;
        for (i, chunk) in chunks.enumerate() {
            if i < len / 8 {
                compress(&mut v, chunk.swap_bytes());
            } else {
                tail = chunk.swap_bytes();
            }
        }
        compress(&mut v, tail | (len as u64) << 56);
        v[2] ^= 0xff;
        for _ in 0..3 {
            sip_round(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }

    /// The keyed hash of a normalised word's canonical form (`buf` is scratch space for
    /// non-ASCII words; the others are handled in registers).
    fn hash(&self, word: Normalised<'_>, buf: &mut Vec<u8>) -> u64 {
        match word {
            Normalised::Packed(packed) => self.sip_packed(packed.canonical()),
            // Short words from elsewhere than the splitter (a word's parts, letters of a run).
            Normalised::Bytes(word) if let Some(packed) = Packed::of(word) => {
                self.sip_packed(packed.canonical())
            }
            Normalised::Bytes(word) if word.is_ascii() => {
                self.sip_chunks(words::canonical_chunks(word), word.len())
            }
            Normalised::Bytes(word) => {
                words::canonical(word, buf);
                self.sip.hash(buf)
            }
        }
    }

    /// Calls `f(start, end, normalised word, hash)` for every word of `text`.
    fn for_each(&self, text: &str, mut f: impl FnMut(usize, usize, Normalised<'_>, u64)) {
        let mut buf = Vec::with_capacity(32);
        for_each_word(text, |start, end, word| {
            f(start, end, word, self.hash(word, &mut buf));
        });
    }
}

/// One SipRound.
#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

/// A word of a scanned text.
#[derive(Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
    hash: u64,
    /// A word of the template (or the canary): only runs of these can match.
    known: bool,
    /// The normalised word when it is one character (letter-spaced runs), else 0.
    single: u8,
}

/// How a word of a scanned text continues template text.
#[derive(Clone, Copy)]
struct Link {
    /// The next word (at most `MAX_FILLER` words on) that follows this one in the template, or
    /// `u32::MAX`.
    next: u32,
    /// Length of the run of such words from this one, up to `min_span` (0: not a template word).
    reach: u8,
    /// Template pairs in a row, word next to word, from this word on and up to it (up to
    /// `min_span`).
    ahead: u8,
    back: u8,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            next: u32::MAX,
            reach: 0,
            ahead: 0,
            back: 0,
        }
    }
}

/// A match in word-index space, before merging into findings.
struct Hit {
    start: usize,
    end: usize,
    covered: usize,
    words: usize,
    form: Form,
}

impl Hit {
    /// The hit as a finding over the words it was found in.
    fn finding(&self, words: &[Word]) -> Finding {
        Finding {
            start: words[self.start].start,
            len: words[self.end].end - words[self.start].start,
            score: self.covered as f32 / self.words as f32,
            form: self.form,
        }
    }
}

/// Scans texts against one version's fingerprints and, optionally, a per-request canary, the
/// ISV text of the request as sent, and the caller's own text.
pub struct Scanner<'a> {
    fp: &'a Fingerprints,
    hasher: WordHasher,
    canary: Option<u64>,
    /// The request's ISV text as sent, scanned as a second set of fingerprints.
    sent: Option<Box<Scanner<'a>>>,
    /// The caller's own text: a leak of it is no leak.
    known: Option<&'a KnownText>,
}

impl<'a> Scanner<'a> {
    pub fn new(fp: &'a Fingerprints) -> Self {
        Self {
            fp,
            hasher: fp.hasher(),
            canary: None,
            sent: None,
            known: None,
        }
    }

    /// Also finds the ISV text of the request as sent ([`Fingerprints::of_sent`]).
    pub fn with_sent(mut self, sent: &'a Fingerprints) -> Self {
        self.sent = Some(Box::new(Scanner::new(sent)));
        self
    }

    /// The caller's own text ([`KnownText`]): a finding that is all the caller's own text
    /// coming back does not count, so a reply echoing a guessed sentence is answered whether or
    /// not the guess is template text.
    pub fn with_known(mut self, known: &'a KnownText) -> Self {
        self.known = Some(known);
        self
    }

    /// Also reports every occurrence of `canary` (a single word, such as a random token).
    pub fn with_canary(mut self, canary: &str) -> Self {
        let mut hash = None;
        self.hasher.for_each(canary, |_, _, _, h| hash = Some(h));
        self.canary = hash;
        self
    }

    /// Whether `text` holds a run of template words in order (verbatim or near-verbatim: the
    /// `text` form only, without the disguise passes). Cheaper than [`Scanner::scan`], for text
    /// that should be a tenant's and would hold the template as such if it were mislabelled.
    pub fn repeats_template(&self, text: &str) -> bool {
        let words = self.words(text);
        let mut hits = Vec::new();
        self.match_runs(&words, Form::Text, &mut hits);
        !hits.is_empty()
    }

    /// Every leaked span of `text`, in order.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut findings = self.scan_at(text, 0);
        if let Some(sent) = &self.sent {
            findings.extend(sent.scan_at(text, 0));
            findings = merge(findings);
        }
        findings.retain(|f| !self.is_known(text, f));
        findings
    }

    /// Whether a finding is, word for word as written, the caller's own text.
    fn is_known(&self, text: &str, finding: &Finding) -> bool {
        self.known
            .is_some_and(|known| known.covers(&text[finding.start..finding.start + finding.len]))
    }

    /// Scans `text` and applies `policy`: what was done, and the text to use instead of `text`
    /// when anything was found (empty when withheld).
    pub fn guard(&self, text: &str, policy: LeakPolicy) -> (GuardReport, Option<String>) {
        let findings = self.scan(text);
        let mut forms = Vec::new();
        for f in &findings {
            if !forms.contains(&f.form) {
                forms.push(f.form);
            }
        }
        let (action, replacement) = match (findings.is_empty(), policy) {
            (true, _) => (GuardAction::Passed, None),
            (false, LeakPolicy::Redact) => (
                GuardAction::Redacted,
                Some(redact(text, &findings, REDACTION_MARKER)),
            ),
            (false, LeakPolicy::Block) => (GuardAction::Withheld, Some(String::new())),
        };
        let report = GuardReport {
            action,
            findings: findings.len(),
            forms,
        };
        (report, replacement)
    }

    fn scan_at(&self, text: &str, depth: u8) -> Vec<Finding> {
        let words = self.words(text);
        let mut hits = Vec::new();
        self.match_runs(&words, Form::Text, &mut hits);
        let links = self.links(&words);
        self.match_repaired(text, &words, &links, &mut hits);
        self.match_reversed_lines(text, &words, &mut hits);
        self.match_interleaved(&words, &links, &mut hits);
        self.match_letter_spaced(&words, &mut hits);
        let mut findings: Vec<Finding> = hits.iter().map(|h| h.finding(&words)).collect();
        let deeper = depth < MAX_DEPTH;
        let unescaped = deeper.then(|| unescape::unescaped(text)).flatten();
        let decoded = if deeper {
            decode::decoded_runs(text)
        } else {
            Vec::new()
        };
        // Words run together are split where the text is read as written: text with escapes is
        // split with them undone (the view below), an encoded run once decoded.
        if unescaped.is_none() {
            self.match_joined(text, &words, &decoded, &mut findings);
        }
        if !deeper {
            return merge(findings);
        }
        if let Some(view) = unescape::symbols_as_letters(text) {
            findings.extend(self.scan_at(&view, depth + 1));
        }
        if let Some(view) = unescaped {
            for f in self.scan_at(&view.text, depth + 1) {
                let (start, end) = view.original(f.start, f.start + f.len);
                findings.push(Finding {
                    start,
                    len: end - start,
                    ..f
                });
            }
        }
        for run in decoded {
            let inner = self.scan_at(&run.text, depth + 1);
            if let Some(best) = inner.iter().map(|f| f.score).reduce(f32::max) {
                findings.push(Finding {
                    start: run.start,
                    len: run.end - run.start,
                    score: best,
                    form: Form::Encoded,
                });
            }
        }
        merge(findings)
    }

    /// Whether `hash` is a template word's or the canary's.
    #[inline]
    fn knows(&self, hash: u64) -> bool {
        self.fp.words.contains(hash) || Some(hash) == self.canary
    }

    fn words(&self, text: &str) -> Vec<Word> {
        let mut out = Vec::with_capacity(text.len() / 5);
        let mut buf = Vec::new();
        // Short words repeat (`the`, `to`, `you`): each is hashed and looked up once per text,
        // remembered in a small table indexed by its bits (never zero for a word).
        let mut seen = [(0u64, 0u64, false); 256];
        for_each_word(text, |start, end, word| {
            let (hash, known) = match word {
                Normalised::Packed(p) => {
                    let (bits, _) = p.to_be();
                    let slot = &mut seen[(bits.wrapping_mul(R) >> 56) as usize];
                    if slot.0 != bits {
                        let hash = self.hasher.hash(word, &mut buf);
                        *slot = (bits, hash, self.knows(hash));
                    }
                    (slot.1, slot.2)
                }
                word => {
                    let hash = self.hasher.hash(word, &mut buf);
                    (hash, self.knows(hash))
                }
            };
            out.push(Word {
                start,
                end,
                hash,
                known,
                single: word.single().unwrap_or(0),
            });
        });
        let mut after_known = false;
        for w in &mut out {
            let word = &text.as_bytes()[w.start..w.end];
            // A number is read as letters only when short and after a template word: numbers are
            // common.
            if !w.known
                && (after_known && word.len() <= 4 || !word.iter().all(u8::is_ascii_digit))
                && let Some(hash) = self.leet_reading(word, &mut buf)
            {
                w.hash = hash;
                w.known = true;
            }
            after_known = w.known;
        }
        out
    }

    /// The template word a word written with digits for letters stands for (`r3v34l`, `1nv01c3`),
    /// if any: digits read as the letters they look like, `1` as `i` or as `l`.
    #[inline]
    fn leet_reading(&self, word: &[u8], buf: &mut Vec<u8>) -> Option<u64> {
        const MOST_ONES: usize = 4;
        if !word.iter().any(u8::is_ascii_digit) || word.len() > MAX_WORD {
            return None;
        }
        // A number is read as letters only when every digit looks like one (`7311`, not `2026`).
        if word.iter().all(u8::is_ascii_digit) && word.contains(&b'2') {
            return None;
        }
        // Written in other letters too (`0r1en7é`): read in the normalised form.
        let mut normalised = Vec::new();
        let word = if word.is_ascii() {
            word
        } else {
            let text = std::str::from_utf8(word).ok()?;
            for_each_word(text, |_, _, w| {
                w.with_bytes(|b| normalised.extend_from_slice(b))
            });
            &normalised
        };
        let mut read: Vec<u8> = word
            .iter()
            .map(|b| match b.to_ascii_lowercase() {
                b'4' => b'a',
                b'3' => b'e',
                b'0' => b'o',
                b'5' => b's',
                b'7' => b't',
                b'8' => b'b',
                b'6' | b'9' => b'g',
                b => b,
            })
            .collect();
        let ones: Vec<usize> = (0..read.len()).filter(|&i| read[i] == b'1').collect();
        let ones = &ones[..ones.len().min(MOST_ONES)];
        (0..1u32 << ones.len()).find_map(|choice| {
            for (k, &i) in ones.iter().enumerate() {
                read[i] = if choice >> k & 1 == 0 { b'i' } else { b'l' };
            }
            let hash = self.hasher.hash(Normalised::Bytes(&read), buf);
            self.knows(hash).then_some(hash)
        })
    }

    /// Runs of `min_span` words in template order, read forwards and backwards; the canary.
    fn match_runs(&self, words: &[Word], form: Form, hits: &mut Vec<Hit>) {
        let n = self.fp.min_span() as usize;
        // Known words in a row: a window of fewer cannot be a template run, so is not looked up.
        let mut streak = 0;
        for (i, w) in words.iter().enumerate() {
            if !w.known {
                streak = 0;
                continue;
            }
            streak += 1;
            if Some(w.hash) == self.canary {
                hits.push(Hit {
                    start: i,
                    end: i,
                    covered: 1,
                    words: 1,
                    form: Form::Canary,
                });
            }
            if streak < n {
                continue;
            }
            let run = || words[i + 1 - n..=i].iter().map(|w| w.hash);
            let found = if self.fp.windows.contains(polynomial(run())) {
                Some(form)
            } else if self.fp.windows.contains(polynomial(run().rev())) {
                Some(Form::Reversed)
            } else {
                None
            };
            if let Some(form) = found {
                hits.push(Hit {
                    start: i + 1 - n,
                    end: i,
                    covered: n,
                    words: n,
                    form,
                });
            }
        }
    }

    /// Each line written backwards, the lines in order (a reversed passage quoted line by line):
    /// reading the words of each line in reverse only finds more than reading the whole text
    /// backwards where a run crosses a line break, so two neighbouring lines are read that way
    /// when the template words at the start of the first and the end of the second could make a
    /// run.
    fn match_reversed_lines(&self, text: &str, words: &[Word], hits: &mut Vec<Hit>) {
        let n = self.fp.min_span() as usize;
        // The first word of every line (word indices), from the line breaks.
        let mut starts = vec![0];
        for at in memchr::memchr_iter(b'\n', text.as_bytes()) {
            let first = words.partition_point(|w| w.start < at);
            if first > *starts.last().expect("not empty") && first < words.len() {
                starts.push(first);
            }
        }
        starts.push(words.len());
        let lines: Vec<std::ops::Range<usize>> = starts.windows(2).map(|s| s[0]..s[1]).collect();
        for pair in lines.windows(2) {
            let (first, second) = (&words[pair[0].clone()], &words[pair[1].clone()]);
            let leading = first.iter().take_while(|w| w.known).count();
            let trailing = second.iter().rev().take_while(|w| w.known).count();
            // Read backwards, the first line's first word comes right before the second line's
            // last: they must follow each other in the template.
            let (Some(last_read), Some(next_read)) = (first.first(), second.last()) else {
                continue;
            };
            if leading + trailing < n
                || !self
                    .fp
                    .pairs
                    .contains(extend(last_read.hash, next_read.hash))
            {
                continue;
            }
            let order: Vec<usize> = pair[0].clone().rev().chain(pair[1].clone().rev()).collect();
            let reordered: Vec<Word> = order.iter().map(|&k| words[k]).collect();
            let mut found = Vec::new();
            self.match_runs(&reordered, Form::Reversed, &mut found);
            for hit in found {
                let taken = &order[hit.start..=hit.end];
                let (start, end) = (taken.iter().min(), taken.iter().max());
                if let (Some(&start), Some(&end)) = (start, end) {
                    hits.push(Hit {
                        start,
                        end,
                        covered: hit.covered,
                        words: end - start + 1,
                        form: Form::Reversed,
                    });
                }
            }
        }
    }

    /// How each word continues template text ([`Link`]), found once for the passes that
    /// follow runs through text that is not a run as written (the repaired and interleaved
    /// forms). The word that continues a run from a word depends on that word alone, so it is
    /// looked up once per word, and runs are measured from the end.
    fn links(&self, words: &[Word]) -> Vec<Link> {
        let n = self.fp.min_span() as u8;
        let mut links = vec![Link::default(); words.len()];
        for (i, from) in words.iter().enumerate().rev().filter(|(_, w)| w.known) {
            let end = words.len().min(i + 2 + MAX_FILLER);
            let Some(j) = (i + 1..end).find(|&j| {
                words[j].known && self.fp.pairs.contains(extend(from.hash, words[j].hash))
            }) else {
                links[i].reach = 1;
                continue;
            };
            let after = links[j];
            links[i].next = j as u32;
            links[i].reach = after.reach.saturating_add(1).min(n);
            if j == i + 1 {
                links[i].ahead = after.ahead.saturating_add(1).min(n);
            }
        }
        for i in 1..words.len() {
            if links[i - 1].next as usize == i {
                links[i].back = links[i - 1].back.saturating_add(1).min(n);
            }
        }
        links
    }

    /// Runs broken by one word that is not a template word but stands for template text: words
    /// run together where the template has punctuation inside a word (`dont`, `eg`, `warnfirst`)
    /// or one template word altered by a letter (a typo, a disguise that missed one letter). Only
    /// a word with enough template words around it to complete a run is looked at, split into
    /// template words or changed by one letter (dropped, added, replaced or swapped with its
    /// neighbour), and the run is then checked as any other.
    fn match_repaired(&self, text: &str, words: &[Word], links: &[Link], hits: &mut Vec<Hit>) {
        let n = self.fp.min_span() as usize;
        // Runs found as written (few): a word next to one is read only if the run it could make
        // reaches beyond it, and a word between two is taken with them.
        let found = hits.len();
        let in_found = |k: usize, hits: &[Hit]| {
            hits[..found]
                .iter()
                .any(|h| h.form != Form::Canary && h.start <= k && k <= h.end)
        };
        for (i, w) in words.iter().enumerate() {
            if w.known {
                continue;
            }
            // The template words before and after that follow each other as in the template
            // (in ordinary text these are short), the words on either side included.
            let l = match i.checked_sub(1) {
                Some(before) if words[before].known => 1 + usize::from(links[before].back),
                _ => 0,
            };
            let r = match words.get(i + 1) {
                Some(after) if after.known => 1 + usize::from(links[i + 1].ahead),
                _ => 0,
            };
            if l + r + 2 < n {
                continue;
            }
            let before = l > 0 && in_found(i - 1, hits);
            let after = r > 0 && in_found(i + 1, hits);
            if before && after {
                hits.push(Hit {
                    start: i - 1,
                    end: i + 1,
                    covered: 2,
                    words: 3,
                    form: Form::Text,
                });
                continue;
            }
            // A found run on one side and nothing on the other: nothing to add but this word.
            if before && r == 0 || after && l == 0 {
                continue;
            }
            let word = &text.as_bytes()[w.start..w.end];
            if !word.is_ascii() || word.len() > MAX_WORD {
                continue;
            }
            let letters: Vec<u8> = word
                .iter()
                .filter(|b| b.is_ascii_alphanumeric())
                .map(u8::to_ascii_lowercase)
                .collect();
            let before = (l > 0).then(|| words[i - 1].hash);
            for replacement in self.readings(&letters, before, l + r + 1 >= n) {
                let local: Vec<Word> = words[i - l..i]
                    .iter()
                    .copied()
                    .chain(replacement.iter().map(|&hash| Word {
                        hash,
                        known: true,
                        ..*w
                    }))
                    .chain(words[i + 1..=i + r].iter().copied())
                    .collect();
                let original = |k: usize| match k {
                    k if k < l => i - l + k,
                    k if k < l + replacement.len() => i,
                    k => k + 1 + i - l - replacement.len(),
                };
                let mut found = Vec::new();
                self.match_runs(&local, Form::Text, &mut found);
                for hit in &mut found {
                    hit.start = original(hit.start);
                    hit.end = original(hit.end);
                    hit.words = hit.end - hit.start + 1;
                    hit.covered = hit.words;
                }
                hits.extend(found);
            }
        }
    }

    /// Template words a word not in the template could stand for, following the template word
    /// `before` it (if any) as in the template: two template words that follow each other in the
    /// template and make it when written together, and, when `altered` is allowed, the template
    /// words one letter away from it.
    fn readings(&self, letters: &[u8], before: Option<u64>, altered: bool) -> Vec<Vec<u64>> {
        const MOST: usize = 3;
        // A reading must follow the template word before it, when there is one.
        let follows = |h: u64| before.is_none_or(|b| self.fp.pairs.contains(extend(b, h)));
        let mut out = Vec::new();
        let mut buf = Vec::new();
        // Two template words run together (longer runs are the joined pass's).
        for cut in 1..letters.len() {
            let first = self
                .hasher
                .hash(Normalised::Bytes(&letters[..cut]), &mut buf);
            if !self.knows(first) || !follows(first) {
                continue;
            }
            let second = self
                .hasher
                .hash(Normalised::Bytes(&letters[cut..]), &mut buf);
            if self.knows(second) && self.fp.pairs.contains(extend(first, second)) {
                out.push(vec![first, second]);
            }
        }
        if altered && letters.len() >= 4 {
            let mut variant = Vec::with_capacity(letters.len() + 1);
            let mut consider = |variant: &[u8], out: &mut Vec<Vec<u64>>| {
                let hash = self.hasher.hash(Normalised::Bytes(variant), &mut buf);
                if self.knows(hash)
                    && follows(hash)
                    && out.len() < MOST
                    && !out.iter().any(|o| o == &[hash])
                {
                    out.push(vec![hash]);
                }
            };
            const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
            for k in 0..=letters.len() {
                if k < letters.len() {
                    // Dropped.
                    variant.clear();
                    variant.extend_from_slice(&letters[..k]);
                    variant.extend_from_slice(&letters[k + 1..]);
                    consider(&variant, &mut out);
                    // Swapped with the next.
                    if k + 1 < letters.len() {
                        variant.clear();
                        variant.extend_from_slice(letters);
                        variant.swap(k, k + 1);
                        consider(&variant, &mut out);
                    }
                }
                for &c in ALPHABET {
                    // Replaced.
                    if k < letters.len() && letters[k] != c {
                        variant.clear();
                        variant.extend_from_slice(letters);
                        variant[k] = c;
                        consider(&variant, &mut out);
                    }
                    // Added.
                    variant.clear();
                    variant.extend_from_slice(&letters[..k]);
                    variant.push(c);
                    variant.extend_from_slice(&letters[k..]);
                    consider(&variant, &mut out);
                }
            }
        }
        out
    }

    /// Template words in template order with other words between them: from each template word,
    /// the run is followed to the next word that continues it (at most `MAX_FILLER` words on),
    /// so filler that happens to be a template word does not break it. A run of `min_span` words
    /// counts if it is a fingerprinted run, has filler somewhere (a single inserted word is
    /// enough) and spreads over at most twice its length.
    fn match_interleaved(&self, words: &[Word], links: &[Link], hits: &mut Vec<Hit>) {
        let n = self.fp.min_span() as usize;
        let mut chain = Vec::with_capacity(n);
        for first in (0..words.len()).filter(|&i| usize::from(links[i].reach) == n) {
            chain.clear();
            chain.extend(
                std::iter::successors(Some(first), |&i| {
                    Some(links[i].next as usize).filter(|&j| j < words.len())
                })
                .take(n),
            );
            let last = chain[n - 1];
            let spread = last - first + 1;
            let gaps = chain.windows(2).filter(|w| w[1] > w[0] + 1).count();
            if gaps >= 1
                && spread <= 2 * n
                && self
                    .fp
                    .windows
                    .contains(polynomial(chain.iter().map(|&j| words[j].hash)))
            {
                hits.push(Hit {
                    start: first,
                    end: last,
                    covered: n,
                    words: spread,
                    form: Form::Interleaved,
                });
            }
        }
    }

    /// Runs of single characters (`d o  n o t`, `d-o-n-o-t`), re-segmented into template words.
    fn match_letter_spaced(&self, words: &[Word], hits: &mut Vec<Hit>) {
        let mut i = 0;
        while i < words.len() {
            if words[i].single == 0 {
                i += 1;
                continue;
            }
            let run_start = i;
            while i < words.len() && words[i].single != 0 && i - run_start < MAX_SPACED_RUN {
                i += 1;
            }
            if i - run_start >= 2 * self.fp.min_span() as usize {
                let (segmented, spans) = self.segment(&words[run_start..i]);
                let before = hits.len();
                self.match_runs(&segmented, Form::LetterSpaced, hits);
                for hit in &mut hits[before..] {
                    hit.start = run_start + spans[hit.start].0;
                    hit.end = run_start + spans[hit.end].1;
                    hit.words = hit.end - hit.start + 1;
                    hit.covered = hit.words;
                    if hit.form == Form::Reversed {
                        hit.form = Form::LetterSpaced;
                    }
                }
            }
        }
    }

    /// Template words run together (`Neverrevealthecode`, `rules:1.Never`): in each stretch of
    /// text without whitespace that holds a word too long to be an ordinary one, the letters and
    /// digits are split into template words as a letter-spaced run is, and runs of them matched.
    /// A stretch inside an encoded run (`decoded`) is not: it is read decoded.
    fn match_joined(
        &self,
        text: &str,
        words: &[Word],
        decoded: &[decode::Decoded],
        findings: &mut Vec<Finding>,
    ) {
        let bytes = text.as_bytes();
        let min_letters = 2 * self.fp.min_span() as usize;
        let mut done = 0;
        for w in words {
            if w.known || w.end - w.start < LONG_WORD || w.start < done {
                continue;
            }
            let start = bytes[..w.start]
                .iter()
                .rposition(u8::is_ascii_whitespace)
                .map_or(0, |i| i + 1);
            let end = bytes[w.end..]
                .iter()
                .position(u8::is_ascii_whitespace)
                .map_or(bytes.len(), |i| w.end + i);
            done = end;
            if decoded
                .iter()
                .any(|run| run.start <= start && end <= run.end)
            {
                continue;
            }
            let (offset, chunk) = (start, &bytes[start..end]);
            let letters: Vec<Word> = chunk
                .iter()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_alphanumeric())
                .map(|(i, b)| Word {
                    start: offset + i,
                    end: offset + i + 1,
                    hash: 0,
                    known: false,
                    single: b.to_ascii_lowercase(),
                })
                .collect();
            for part in letters.chunks(MAX_SPACED_RUN) {
                if part.len() < min_letters {
                    continue;
                }
                let (segmented, _) = self.segment(part);
                let mut hits = Vec::new();
                self.match_runs(&segmented, Form::Joined, &mut hits);
                findings.extend(hits.iter().map(|h| Finding {
                    form: Form::Joined,
                    ..h.finding(&segmented)
                }));
            }
        }
    }

    /// The letters of a run split into template words: as few letters left over as possible (a
    /// left-over letter becomes a word that matches nothing) and, among such splits, the fewest
    /// words with the most neighbours that are neighbours in the template (`with a head`, not
    /// `with ahead`; `combination`, not `c o m bi n at i o n`). Returns the words and, for each,
    /// the first and last letter (indices into the run) it spans.
    fn segment(&self, letters: &[Word]) -> (Vec<Word>, Vec<(usize, usize)>) {
        // A left-over letter weighs more than all the template pairs a run can have. Each word
        // costs a little and each template pair earns more: fewer, longer words win unless more
        // of them follow each other in the template (one-letter words are template words as soon
        // as the template has one, since every letter has the same canonical form).
        const LEFT_OVER: i64 = 1 << 20;
        const WORD: i64 = 1;
        const PAIR: i64 = 2;
        let m = letters.len();
        let chars: Vec<u8> = letters.iter().map(|w| w.single).collect();
        // best[j]: (score of the best split of the first j letters, where its last word starts,
        // that word's hash when it is a template word)
        let mut best: Vec<(i64, usize, Option<u64>)> = vec![(i64::MAX, 0, None); m + 1];
        best[0].0 = 0;
        let mut canonical = Vec::new();
        for j in 0..m {
            let (score, start, last) = best[j];
            if score == i64::MAX {
                continue;
            }
            // Every one-letter word has the same canonical form, so two single letters in a row
            // earn no pair credit: such a pair in the fingerprints (`e.g.`, `n/a`) would
            // otherwise make every split into single letters the best one.
            let last_single = j - start == 1;
            if score + LEFT_OVER < best[j + 1].0 {
                best[j + 1] = (score + LEFT_OVER, j, None);
            }
            for k in 1..=MAX_WORD.min(m - j) {
                let h = self
                    .hasher
                    .hash(Normalised::Bytes(&chars[j..j + k]), &mut canonical);
                if !self.knows(h) {
                    continue;
                }
                let pair = !(last_single && k == 1)
                    && last.is_some_and(|p| self.fp.pairs.contains(extend(p, h)));
                let score = score + WORD - PAIR * i64::from(pair);
                if score < best[j + k].0 {
                    best[j + k] = (score, j, Some(h));
                }
            }
        }
        let mut out = Vec::new();
        let mut spans = Vec::new();
        let mut j = m;
        while j > 0 {
            let (_, prev, word) = best[j];
            out.push(Word {
                start: letters[prev].start,
                end: letters[j - 1].end,
                hash: word.unwrap_or(0),
                known: word.is_some(),
                single: 0,
            });
            spans.push((prev, j - 1));
            j = prev;
        }
        out.reverse();
        spans.reverse();
        (out, spans)
    }
}

/// Overlapping or adjacent findings (at most 3 bytes apart) become one; the stronger score and
/// the first form win.
fn merge(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by_key(|f| (f.start, std::cmp::Reverse(f.len)));
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings {
        match out.last_mut() {
            Some(last) if f.start <= last.start + last.len + 3 => {
                let end = (last.start + last.len).max(f.start + f.len);
                last.len = end - last.start;
                last.score = last.score.max(f.score);
            }
            _ => out.push(f),
        }
    }
    out
}

/// `text` with every finding replaced by `marker`.
pub fn redact(text: &str, findings: &[Finding], marker: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in findings {
        out.push_str(&text[at..f.start]);
        out.push_str(marker);
        at = f.start + f.len;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests;
