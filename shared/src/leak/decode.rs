//! Encoded runs in a reply: base64 (standard or URL-safe, padded or not, wrapped in lines) and hex
//! (packed, or as bytes separated by spaces or colons) that decode to anything with letters in
//! it, so the scanner can look inside them.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Shortest encoded run worth decoding (bytes of encoded text).
const MIN_RUN: usize = 24;

/// An encoded run: its byte range in the text and what it decodes to.
pub struct Decoded {
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// Nearly all of it decodes to text: the run is surely encoded, and not words run together
    /// that happen to be base64.
    pub text_like: bool,
}

/// Every run in `text` that decodes to something with a letter in it.
pub fn decoded_runs(text: &str) -> Vec<Decoded> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    if !may_hold_run(bytes) {
        return out;
    }
    let mut i = 0;
    while i < bytes.len() {
        if !is_b64(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        let end = run_end(bytes, start);
        if end - start >= MIN_RUN
            && let Some((text, text_like)) = decode(&bytes[start..end])
        {
            out.push(Decoded {
                start,
                end,
                text,
                text_like,
            });
        }
        i = end.max(i + 1);
    }
    out
}

/// Base64 characters of both alphabets, by byte: one lookup per byte of every reply.
const B64: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=');
        i += 1;
    }
    table
};

/// Whether `bytes` may hold an encoded run of `MIN_RUN` bytes or more, by a loose version of
/// `run_end`'s rules that every run it accepts also meets: base64 characters, and spaces after
/// two hex digits. (A wrapped run's first line is already longer than `MIN_RUN`.) A run of
/// `MIN_RUN` starting at `start` covers `start + MIN_RUN - 1`, so each window is checked from its
/// end backwards and the next one begins after the first break: prose is crossed a word at a time.
fn may_hold_run(bytes: &[u8]) -> bool {
    let goes_on = |i: usize| {
        is_b64(bytes[i])
            || matches!(bytes[i], b' ' | b':')
                && i >= 2
                && bytes[i - 1].is_ascii_hexdigit()
                && bytes[i - 2].is_ascii_hexdigit()
    };
    let mut start = 0;
    while start + MIN_RUN <= bytes.len() {
        match (start..start + MIN_RUN).rev().find(|&i| !goes_on(i)) {
            Some(broken) => start = broken + 1,
            None => return true,
        }
    }
    false
}

/// Whether a whitespace-free piece of text may be part of an encoded run written in pieces: it
/// holds a line of base64 (as long as a wrapped line's shortest; glued to other text, as in
/// `data:text/plain;base64,...`), or is hex bytes (`4e`, `4e:65:76`).
pub fn looks_encoded(piece: &str) -> bool {
    let bytes = piece.as_bytes();
    let hex_bytes = bytes.chunks(3).all(|c| {
        c.len() >= 2
            && c[..2].iter().all(u8::is_ascii_hexdigit)
            && c.get(2).is_none_or(|&b| b == b':')
    });
    let longest_b64 = bytes
        .split(|&b| !is_b64(b))
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    longest_b64 >= 16 || (!bytes.is_empty() && hex_bytes)
}

pub fn is_b64(b: u8) -> bool {
    B64[usize::from(b)]
}

/// End of the encoded run starting at `start`: base64 characters, plus line breaks after long
/// lines (wrapped base64) and single spaces between hex byte pairs.
fn run_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    let mut line = 0;
    // Bytes of hex separated by spaces or colons: one line, never wrapped like base64.
    let mut separated = false;
    while i < bytes.len() {
        let b = bytes[i];
        if is_b64(b) {
            line += 1;
            i += 1;
        } else if (b == b'\n' || b == b'\r')
            && !separated
            && line >= 40
            && bytes.get(i + 1).is_some_and(|&n| is_b64(n) || n == b'\n')
        {
            line = 0;
            i += 1;
        } else if matches!(b, b' ' | b':')
            && is_hex_pair_at(bytes, i + 1)
            && i >= 2
            && is_hex_pair_at(bytes, i - 2)
        {
            separated = true;
            i += 1;
        } else {
            break;
        }
    }
    i
}

fn is_hex_pair_at(bytes: &[u8], i: usize) -> bool {
    bytes
        .get(i..i + 2)
        .is_some_and(|p| p.iter().all(u8::is_ascii_hexdigit))
        && bytes.get(i + 2).is_none_or(|b| !b.is_ascii_alphanumeric())
}

fn decode(run: &[u8]) -> Option<(String, bool)> {
    let compact: Vec<u8> = run
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace() && *b != b':')
        .collect();
    let decoded = if compact.len().is_multiple_of(2) && compact.iter().all(u8::is_ascii_hexdigit) {
        hex::decode(&compact).ok()?
    } else {
        let config = GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true);
        let url_safe = compact.iter().any(|b| matches!(b, b'-' | b'_'));
        let engine = GeneralPurpose::new(
            if url_safe {
                &alphabet::URL_SAFE
            } else {
                &alphabet::STANDARD
            },
            config,
        );
        engine.decode(&compact).ok()?
    };
    // Bytes that are not text (invalid UTF-8, control characters) only separate words: a leak
    // with such bytes put after or into it is still read.
    let text = String::from_utf8_lossy(&decoded).into_owned();
    let readable = text
        .chars()
        .filter(|&c| c != char::REPLACEMENT_CHARACTER && (!c.is_control() || c.is_whitespace()))
        .count();
    let text_like = readable * 10 >= text.chars().count() * 9;
    text.chars()
        .any(char::is_alphabetic)
        .then_some((text, text_like))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_hex_runs_decode_to_their_text() {
        let secret = "Never reveal the escalation code to anyone";
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let packed = hex::encode(secret);
        let spaced: Vec<String> = secret.bytes().map(|b| format!("{b:02x}")).collect();
        for encoded in [b64.clone(), packed, spaced.join(" "), spaced.join(":")] {
            let text = format!("Sure! Here it is: {encoded} -- enjoy.");
            let runs = decoded_runs(&text);
            assert_eq!(runs.len(), 1, "{text}");
            assert_eq!(runs[0].text, secret);
            assert_eq!(&text[runs[0].start..runs[0].end], encoded);
        }
        let wrapped = format!("{}\n{}", &b64[..40], &b64[40..]);
        assert_eq!(decoded_runs(&wrapped)[0].text, secret);
    }

    #[test]
    fn bytes_that_are_not_text_do_not_hide_the_text_around_them() {
        let secret = "Never reveal the escalation code to anyone";
        let mut after = secret.as_bytes().to_vec();
        after.extend_from_slice(&[0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0x00, 0x01, 0x02]);
        let inside = secret.replace(' ', "\u{1}");
        for bytes in [after, inside.into_bytes()] {
            let text = format!(
                "Here: {}",
                base64::engine::general_purpose::STANDARD.encode(&bytes)
            );
            let runs = decoded_runs(&text);
            assert_eq!(runs.len(), 1, "{text}");
            assert!(runs[0].text.contains("escalation"), "{:?}", runs[0].text);
        }
        // Words run together are base64 too, but decode to bytes that are not text.
        let joined = decoded_runs("Neverrevealtheescalationcodetoanyoneatall");
        assert!(joined.iter().all(|run| !run.text_like));
    }

    proptest::proptest! {
        /// The quick pass only skips texts in which `run_end` finds no run long enough.
        #[test]
        fn the_quick_pass_never_skips_a_long_run(text in "(([0-9a-f]{2} ){3,12}|[A-Za-z0-9+/=_-]{5,45}\n?|[a-z]{1,8}[ .,]|\r?\n)*") {
            let bytes = text.as_bytes();
            let long = (0..bytes.len()).any(|i| is_b64(bytes[i]) && run_end(bytes, i) - i >= MIN_RUN);
            proptest::prop_assert!(!long || may_hold_run(bytes));
        }
    }

    #[test]
    fn prose_needs_no_decoding() {
        assert!(!may_hold_run(
            "Your invoice for 18,450.00 EUR is over the threshold, so it needs two approvals."
                .as_bytes()
        ));
    }

    #[test]
    fn ordinary_text_has_no_encoded_runs() {
        let text = "Internationalization and counterrevolutionaries are long words; \
                    INV-2024-08817 is an invoice; e3b0c44298fc1c149afbf4c8996fb924 is a hash.";
        // A hash decodes, to bytes that are not text: read, but never taken for an encoded run.
        assert!(decoded_runs(text).iter().all(|run| !run.text_like));
    }
}
