//! Text to normalised words, the unit the leak guard fingerprints and compares.
//!
//! A word is a maximal run of letters and digits after normalisation: compatibility decomposition
//! (NFKD: full-width and styled letters become plain ones), look-alike characters mapped to their
//! Unicode skeleton (UTS #39: Cyrillic `а` is Latin `a`), combining marks dropped (`é` is `e`),
//! lowercase. Invisible characters (zero-width spaces and joiners, soft hyphens) are ignored, so
//! they cannot split a word; everything else (whitespace, punctuation, Markdown) separates words.
//! A list marker at the start of a line (`1.`, `a)`) is not a word.
//!
//! The canonical form a word is hashed in also undoes the cheap per-word disguises: letters are
//! shifted so the first letter is `a` (a Caesar shift or rot13 of a word has the same form), and
//! the smaller of the word's form and its reversed word's form is used (so `laever` is `reveal`).

use unicode_normalization::char::{decompose_compatible, is_combining_mark};
use unicode_security::confusable_detection::skeleton;

/// A normalised word as [`for_each_word`] hands it out.
#[derive(Clone, Copy)]
pub enum Normalised<'a> {
    /// An ASCII word of at most 8 bytes (most words), packed without copying it anywhere.
    Packed(Packed),
    /// Any other word: longer, or written with other characters than ASCII.
    Bytes(&'a [u8]),
}

impl Normalised<'_> {
    /// The word when it is a single byte (a letter-spaced run is made of these).
    pub fn single(&self) -> Option<u8> {
        match *self {
            Self::Packed(p) => (p.len == 1).then(|| p.bits.to_be_bytes()[0]),
            Self::Bytes([b]) => Some(*b),
            Self::Bytes(_) => None,
        }
    }

    /// Calls `f` with the word's bytes.
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match *self {
            Self::Packed(p) => f(&p.bits.to_be_bytes()[..p.len]),
            Self::Bytes(b) => f(b),
        }
    }
}

/// A word of 1..=8 lowercase ASCII letters and digits in a `u64`, first byte highest and
/// zero-padded: byte-wise arithmetic works on all of it at once, and two packed words of the same
/// length compare as their text does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packed {
    bits: u64,
    len: usize,
}

/// Every byte of a `u64` set to `b`.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

const HIGH_BITS: u64 = splat(0x80);

impl Packed {
    pub const MAX_LEN: usize = 8;

    /// The word that starts at `bytes[start]`, lowercased, when it is 1..=8 ASCII letters and
    /// digits followed by an ASCII byte or the end of the text (the word is complete then).
    // Inlined: returned through memory, the word stalled its reader on store forwarding.
    #[inline(always)]
    fn at(bytes: &[u8], start: usize) -> Option<Self> {
        // Eight bytes from `start`, zero-padded at the end of the text.
        let bits = match bytes.get(start..start + Self::MAX_LEN) {
            Some(chunk) => u64::from_be_bytes(chunk.try_into().expect("8 bytes")),
            None => {
                let mut chunk = [0; Self::MAX_LEN];
                let tail = &bytes[start..];
                chunk[..tail.len()].copy_from_slice(tail);
                u64::from_be_bytes(chunk)
            }
        };
        let others = !alphanumeric(bits) & HIGH_BITS;
        let len = others.leading_zeros() as usize / 8;
        let complete = match len {
            0 => false,
            Self::MAX_LEN => bytes
                .get(start + len)
                .is_none_or(|b| !b.is_ascii_alphanumeric() && b.is_ascii()),
            // The byte after the word is in `bits` already.
            _ => bits >> (8 * (Self::MAX_LEN - 1 - len)) & 0x80 == 0,
        };
        let mask = !(!0u64).checked_shr(8 * len as u32).unwrap_or(0);
        // Digits already have the 0x20 bit that makes an ASCII capital letter lowercase.
        complete.then(|| Self {
            bits: (bits & mask) | (splat(0x20) & mask),
            len,
        })
    }

    /// `word` packed, when it is 1..=8 ASCII letters and digits (lowercased).
    pub fn of(word: &[u8]) -> Option<Self> {
        (word.len() <= Self::MAX_LEN)
            .then(|| Self::at(word, 0))
            .flatten()
            .filter(|p| p.len == word.len())
    }

    /// The canonical form (see [`canonical`]), computed on all letters at once.
    pub fn canonical(self) -> Self {
        // 0x80 in each byte that is a letter (0x61..=0x7a; digits and padding stay below 0x80).
        let high = (self.bits + splat(0x1f)) & HIGH_BITS;
        if high == 0 {
            // No letters: nothing to shift.
            let reversed = self.reversed(self.bits);
            return Self {
                bits: self.bits.min(reversed),
                len: self.len,
            };
        }
        let letters = (high >> 7) * 0xff;
        let first = self.bits >> (8 * (7 - high.leading_zeros() / 8)) & 0xff;
        let last = self.bits >> (8 * (high.trailing_zeros() / 8)) & 0xff;
        let forward = shift_letters(self.bits, letters, first as u8);
        let backward = shift_letters(self.reversed(self.bits), self.reversed(letters), last as u8);
        Self {
            bits: forward.min(backward),
            len: self.len,
        }
    }

    /// The word's bytes as a big-endian `u64` (first byte highest, zero-padded: never zero, and
    /// different for different words), and its length.
    pub fn to_be(self) -> (u64, usize) {
        (self.bits, self.len)
    }

    /// `bits` (a packed word of this length, or its letter mask) in reverse byte order.
    fn reversed(self, bits: u64) -> u64 {
        bits.swap_bytes() << (8 * (Self::MAX_LEN - self.len))
    }
}

/// 0x80 in each byte of `bits` that is an ASCII letter or digit.
fn alphanumeric(bits: u64) -> u64 {
    // Bytes of 0x80 and more are not ASCII; the others are compared in 7 bits, without carries.
    let ascii = !bits & HIGH_BITS;
    let low = bits & splat(0x7f);
    let digits = in_range(low, b'0', b'9');
    let letters = in_range(low | splat(0x20), b'a', b'z');
    (digits | letters) & ascii
}

/// [`shift`] of every letter byte of `bits` (`letters` is 0xff in those bytes), without carries
/// between bytes: a letter `c` becomes `c + 26 - base` (1..=51), less 26 when that is 26 or more.
fn shift_letters(bits: u64, letters: u64, base: u8) -> u64 {
    let offset = (bits & letters) + (splat(26) & letters) - (splat(base) & letters);
    let wraps = ((offset + splat(128 - 26)) & HIGH_BITS) >> 7;
    let shifted = offset - wraps * 26 + (splat(b'a') & letters);
    shifted | (bits & !letters)
}

/// Calls `f(start, end, word)` for every word of `text`: its byte range in `text` and its
/// normalised (not yet canonical) form.
pub fn for_each_word(text: &str, f: impl FnMut(usize, usize, Normalised<'_>)) {
    let bytes = text.as_bytes();
    let mut word: Vec<u8> = Vec::with_capacity(64);
    let mut start = 0;
    let mut out = Emitter {
        bytes,
        f,
        first_on_line: true,
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_alphanumeric() {
            // A whole short word of ASCII goes out packed: the common case.
            if word.is_empty()
                && let Some(packed) = Packed::at(bytes, i)
            {
                let end = i + packed.len;
                out.emit(i, end, Normalised::Packed(packed));
                i = end;
                continue;
            }
            // Else a run of ASCII letters and digits at once.
            let end = bytes[i..]
                .iter()
                .position(|b| !b.is_ascii_alphanumeric())
                .map_or(bytes.len(), |n| i + n);
            if word.is_empty() {
                start = i;
            }
            word.extend(bytes[i..end].iter().map(u8::to_ascii_lowercase));
            i = end;
            continue;
        }
        if b.is_ascii() {
            out.end_word(&mut word, start, i);
            if b == b'\n' {
                out.first_on_line = true;
            }
            i += 1;
            continue;
        }
        let c = text[i..].chars().next().expect("i is on a char boundary");
        let len = c.len_utf8();
        if is_invisible(c) {
            i += len;
            continue;
        }
        let before = word.len();
        let mut separated = false;
        // A symbol that stands for a letter of another script (a CJK radical, a circled
        // katakana) reads as a mark between words, not as part of the Latin word beside it:
        // `ffvbpv⺁pppbjvjvf` is two words. Symbols that are styled or look-alike Latin letters
        // and digits (circled, full-width, `∨`) map to ASCII and stay in the word.
        let symbol = !c.is_alphanumeric();
        decompose_compatible(c, |d| {
            if is_combining_mark(d) {
                return;
            }
            // Plain ASCII (full-width letters decompose to it) is treated as the fast path above.
            if d.is_ascii() {
                if d.is_ascii_alphanumeric() {
                    word.push(d.to_ascii_lowercase() as u8);
                } else {
                    separated = true;
                }
                return;
            }
            let mut utf8 = [0; 4];
            let mut prototype: Vec<char> = skeleton(d.encode_utf8(&mut utf8))
                .filter(|s| !is_combining_mark(*s))
                .collect();
            // The skeletons of ASCII itself are not applied to ASCII text (`m` is not `rn`, `I`
            // is not `l`), so look-alikes of those letters map to the letter.
            match prototype.as_slice() {
                ['r', 'n'] => prototype = vec!['m'],
                ['l'] if d.is_uppercase() => prototype = vec!['i'],
                _ => {}
            }
            for s in prototype {
                if s.is_alphanumeric() && (!symbol || s.is_ascii()) {
                    for l in s.to_lowercase() {
                        word.extend_from_slice(l.encode_utf8(&mut utf8).as_bytes());
                    }
                } else {
                    separated = true;
                }
            }
        });
        if before == 0 && word.len() > before {
            start = i;
        }
        if separated && word.len() == before {
            out.end_word(&mut word, start, i);
        }
        i += len;
    }
    out.end_word(&mut word, start, bytes.len());
}

/// Hands words to `f`, but not a list marker at the start of a line.
struct Emitter<'t, F> {
    bytes: &'t [u8],
    f: F,
    first_on_line: bool,
}

impl<F: FnMut(usize, usize, Normalised<'_>)> Emitter<'_, F> {
    // Inlined, so that the word reaches `f` in registers.
    #[inline(always)]
    fn emit(&mut self, start: usize, end: usize, word: Normalised<'_>) {
        let list_marker =
            self.first_on_line && word.with_bytes(|w| is_list_marker(w, &self.bytes[end..]));
        if !list_marker {
            (self.f)(start, end, word);
        }
        self.first_on_line = false;
    }

    /// The word collected in `word` (if any) ends at `end`.
    fn end_word(&mut self, word: &mut Vec<u8>, start: usize, end: usize) {
        if !word.is_empty() {
            self.emit(start, end, Normalised::Bytes(word));
            word.clear();
        }
    }
}

/// `1.`, `12)`, `a.` followed by whitespace, as the first word of a line.
fn is_list_marker(word: &[u8], after: &[u8]) -> bool {
    let short = word.len() <= 3 && word.iter().all(u8::is_ascii_digit)
        || word.len() == 1 && word[0].is_ascii_lowercase();
    short && matches!(after, [b'.' | b')', next, ..] if next.is_ascii_whitespace())
}

/// Characters that render as nothing: they must not split or change a word.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{034F}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

/// The canonical form of a normalised word, written into `out`: Caesar shift and reversal undone.
pub fn canonical(word: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if word.is_ascii() {
        out.resize(word.len(), 0);
        canonical_ascii(word, out);
        return;
    }
    let text = String::from_utf8_lossy(word);
    let forward = shifted_chars(text.chars());
    let backward = shifted_chars(text.chars().rev());
    let smaller = if backward < forward {
        backward
    } else {
        forward
    };
    out.extend_from_slice(smaller.as_bytes());
}

/// [`canonical`] of an ASCII word, written into `out` (as long as the word).
pub fn canonical_ascii(word: &[u8], out: &mut [u8]) {
    for (o, chunk) in out.chunks_mut(8).zip(canonical_chunks(word)) {
        o.copy_from_slice(&chunk.to_be_bytes()[..o.len()]);
    }
}

/// [`canonical`] of an ASCII word eight bytes at a time (as [`Packed::canonical`] does for words
/// of up to eight): big-endian chunks, the last one zero-padded.
pub fn canonical_chunks(word: &[u8]) -> impl Iterator<Item = u64> + '_ {
    let n = word.len();
    let forward_base = first_letter(word.iter());
    let backward_base = first_letter(word.iter().rev());
    let forward = move |i: usize| {
        let bits = load(&word[8 * i..n.min(8 * i + 8)], false);
        shift_letters(bits, lowercase(bits), forward_base)
    };
    let backward = move |i: usize| {
        let bits = load(&word[n.saturating_sub(8 * i + 8)..n - 8 * i], true);
        shift_letters(bits, lowercase(bits), backward_base)
    };
    let chunks = n.div_ceil(8);
    // The two forms usually differ in the first chunk.
    let reversed = (0..chunks)
        .map(|i| backward(i).cmp(&forward(i)))
        .find(|o| o.is_ne())
        .is_some_and(std::cmp::Ordering::is_lt);
    (0..chunks).map(move |i| if reversed { backward(i) } else { forward(i) })
}

/// Up to eight bytes, in order or `reversed`, as the high bytes of a big-endian `u64`.
fn load(part: &[u8], reversed: bool) -> u64 {
    match (<[u8; 8]>::try_from(part), reversed) {
        (Ok(full), false) => u64::from_be_bytes(full),
        (Ok(full), true) => u64::from_le_bytes(full),
        (Err(_), _) => {
            let push = |bits: u64, b: &u8| bits << 8 | u64::from(*b);
            let bits = if reversed {
                part.iter().rev().fold(0, push)
            } else {
                part.iter().fold(0, push)
            };
            bits << (8 * (8 - part.len()))
        }
    }
}

/// 0xff in each byte of `bits` that is a lowercase ASCII letter.
fn lowercase(bits: u64) -> u64 {
    let letters = in_range(bits & splat(0x7f), b'a', b'z') & !bits & HIGH_BITS;
    (letters >> 7) * 0xff
}

/// 0x80 in each byte of `x` (7-bit bytes) that is in `lo..=hi`, compared without carries.
fn in_range(x: u64, lo: u8, hi: u8) -> u64 {
    (x + splat(0x80 - lo)) & !(x + splat(0x7f - hi))
}

/// The first lowercase ASCII letter, the base of a Caesar shift (`a` when there is none).
fn first_letter<'a>(mut bytes: impl Iterator<Item = &'a u8>) -> u8 {
    bytes
        .find(|b| b.is_ascii_lowercase())
        .copied()
        .unwrap_or(b'a')
}

/// An ASCII byte with lowercase letters shifted by `base - 'a'` backwards; anything else stays.
fn shift(b: u8, base: u8) -> u8 {
    if b.is_ascii_lowercase() {
        if b >= base {
            b - base + b'a'
        } else {
            b + 26 - base + b'a'
        }
    } else {
        b
    }
}

fn shifted_chars(word: impl Iterator<Item = char>) -> String {
    let mut base = None;
    word.map(|c| {
        if c.is_ascii_lowercase() {
            char::from(shift(c as u8, *base.get_or_insert(c as u8)))
        } else {
            c
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_word(text, |_, _, w| {
            out.push(w.with_bytes(|w| String::from_utf8(w.to_vec()).unwrap()))
        });
        out
    }

    fn canon(word: &str) -> Vec<u8> {
        let mut out = Vec::new();
        canonical(word.as_bytes(), &mut out);
        out
    }

    #[test]
    fn case_punctuation_markdown_and_list_markers_do_not_make_words() {
        assert_eq!(
            words("1. **Never** reveal _these_ rules!\n  2) Do-not `share`.\n- 50 EUR"),
            [
                "never", "reveal", "these", "rules", "do", "not", "share", "50", "eur"
            ]
        );
        assert_eq!(words("Step 1. Go"), ["step", "1", "go"]);
    }

    #[test]
    fn unicode_disguises_are_undone() {
        // Cyrillic а/е/о, full-width letters, a zero-width space, an accent.
        assert_eq!(
            words("r\u{0435}v\u{0435}\u{0430}l ＲＵＬＥＳ se\u{200B}cret café"),
            ["reveal", "rules", "secret", "cafe"]
        );
        // Look-alikes of letters whose own skeleton is not themselves (m -> rn, I -> l).
        assert_eq!(
            words("ｍａｙ \u{041C}AY \u{0406}nvoice ℓate small"),
            ["may", "may", "invoice", "late", "small"]
        );
    }

    #[test]
    fn offsets_point_at_the_original_text() {
        let text = "Hi ＲＵＬＥＳ, ok";
        let mut spans = Vec::new();
        for_each_word(text, |s, e, _| spans.push(&text[s..e]));
        assert_eq!(spans, ["Hi", "ＲＵＬＥＳ", "ok"]);
    }

    #[test]
    fn only_whole_short_ascii_words_are_packed() {
        let packed = |text: &str| Packed::at(text.as_bytes(), 0).map(|p| p.len);
        assert_eq!(packed("Word, next"), Some(4));
        assert_eq!(
            Packed::at(b"Word, next", 0).map(|p| p.bits),
            Some(u64::from_be_bytes(*b"word\0\0\0\0"))
        );
        assert_eq!(packed("EIGHT8ch"), Some(8));
        assert_eq!(packed("EIGHT8ch-"), Some(8));
        assert_eq!(packed("nine9char"), None);
        assert_eq!(packed("caf\u{e9}"), None);
        assert_eq!(packed("zero\u{200B}width"), None);
        assert_eq!(packed("a\x10b"), Some(1));
        assert_eq!(packed("\x7f"), None);
        assert_eq!(packed("@[`{/:"), None);
    }

    proptest::proptest! {
        /// The packed canonical form is the byte-wise one.
        #[test]
        fn packed_words_have_the_same_canonical_form(word in "[a-z0-9]{1,8}") {
            let packed = Packed::at(word.as_bytes(), 0).unwrap().canonical();
            proptest::prop_assert_eq!(
                Normalised::Packed(packed).with_bytes(<[u8]>::to_vec),
                canon(&word)
            );
        }

        /// The scanner's SipHash of a packed word is SipHash-1-3 of its bytes: fingerprints
        /// sealed with the byte-wise hash still match.
        #[test]
        fn a_packed_word_hashes_as_its_bytes(word in "[a-z0-9]{1,8}", key: [u64; 2]) {
            let hasher = crate::leak::hash::WordHasher::new(key);
            let sip = siphasher::sip::SipHasher13::new_with_keys(key[0], key[1]);
            let packed = Packed::at(word.as_bytes(), 0).unwrap();
            proptest::prop_assert_eq!(hasher.sip_packed(packed), sip.hash(word.as_bytes()));
        }

        /// A short word handed over as bytes (a part of a word, letters of a spaced run) is
        /// hashed through the packed path: the same value as its canonical bytes.
        #[test]
        fn a_short_word_as_bytes_hashes_as_its_canonical_form(word in "[a-z0-9]{1,30}", key: [u64; 2]) {
            let hasher = crate::leak::hash::WordHasher::new(key);
            let sip = siphasher::sip::SipHasher13::new_with_keys(key[0], key[1]);
            proptest::prop_assert_eq!(
                hasher.hash(Normalised::Bytes(word.as_bytes()), &mut Vec::new()),
                sip.hash(&canon(&word))
            );
        }
    }

    proptest::proptest! {
        /// An ASCII word's canonical form, eight bytes at a time, is the one read character by
        /// character (as for any other word).
        #[test]
        fn ascii_words_have_the_canonical_form_of_their_characters(word in "[a-z0-9]{1,40}") {
            let forward = shifted_chars(word.chars());
            let backward = shifted_chars(word.chars().rev());
            proptest::prop_assert_eq!(canon(&word), forward.min(backward).into_bytes());
        }
    }

    #[test]
    fn canonical_forms_undo_caesar_shifts_and_reversal() {
        assert_eq!(canon("reveal"), canon("erirny")); // rot13
        assert_eq!(canon("reveal"), canon("laever")); // reversed
        assert_eq!(canon("reveal"), canon("uhyhdo")); // shift 3
        assert_ne!(canon("reveal"), canon("revealed"));
        assert_eq!(canon("a1b2"), canon("b1c2"));
    }
}
