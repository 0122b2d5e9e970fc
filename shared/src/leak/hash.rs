//! The keyed word hash: SipHash-1-3, under a version's key, of a normalised word's canonical form.

use siphasher::sip::SipHasher13;

use super::words::{self, Normalised, Packed, for_each_word};

/// Keyed hashes of canonical words.
pub(super) struct WordHasher {
    sip: SipHasher13,
    /// SipHash's state after keying, for [`WordHasher::sip_packed`].
    keyed: [u64; 4],
}

impl WordHasher {
    pub(super) fn new(key: [u64; 2]) -> Self {
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
    pub(super) fn sip_packed(&self, word: Packed) -> u64 {
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
    pub(super) fn hash(&self, word: Normalised<'_>, buf: &mut Vec<u8>) -> u64 {
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
    pub(super) fn for_each(
        &self,
        text: &str,
        mut f: impl FnMut(usize, usize, Normalised<'_>, u64),
    ) {
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
