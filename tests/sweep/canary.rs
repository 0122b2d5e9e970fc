//! Canaries and the search that finds them in any form a careless line of code could write them
//! in: as they are, in any case, hex, base64 (either alphabet, at any byte alignment), as a list
//! of byte values, JSON-escaped (at any depth), URL-encoded, split across a line break, spaced or
//! punctuated letter by letter, reversed, and inside gzip or base64 wrappers.

use std::io::Read;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Whose text a canary stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Isv,
    Tenant(String),
    /// ISV text no request may ever carry (a comment, a branch never taken): found anywhere,
    /// even in the model's request, it is a leak.
    Never,
}

/// A token planted in one field: a single word, so that prompt assembly, templating and the
/// leak guard treat it as ordinary text.
#[derive(Debug, Clone)]
pub struct Canary {
    pub owner: Owner,
    pub field: &'static str,
    pub token: String,
}

impl Canary {
    /// The canary of `field` for `owner`: `zq` and 14 hex digits derived from both, so no
    /// canary is a prefix of another and each is the same from run to run.
    pub fn new(owner: Owner, field: &'static str) -> Self {
        let who = match &owner {
            Owner::Isv => "isv".to_owned(),
            Owner::Tenant(t) => format!("tenant:{t}"),
            Owner::Never => "never".to_owned(),
        };
        let digest = fnv1a(format!("{who}/{field}").as_bytes());
        Self {
            owner,
            field,
            token: format!("zq{:014x}", digest & 0x00ff_ffff_ffff_ffff),
        }
    }

    pub fn label(&self) -> String {
        match &self.owner {
            Owner::Isv => format!("ISV {}", self.field),
            Owner::Tenant(t) => format!("{t}'s {}", self.field),
            Owner::Never => format!("ISV {} (never sent)", self.field),
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A canary found: which one, and in what form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub canary: usize,
    pub form: String,
}

/// Finds every one of a set of canaries in a text, in every form.
pub struct Finder {
    /// Plain and hex forms, matched without regard to case.
    caseless: AhoCorasick,
    caseless_forms: Vec<(usize, &'static str)>,
    /// Base64 forms, matched exactly (base64 is case-sensitive).
    exact: AhoCorasick,
    exact_forms: Vec<(usize, &'static str)>,
}

/// How deep the search unwraps gzip and base64 inside each other.
const MAX_DEPTH: usize = 3;
/// Shortest base64 run worth decoding and searching again.
const MIN_BASE64_RUN: usize = 16;
/// Fewest byte values in a list worth reading as bytes (a canary has 16).
const MIN_BYTE_LIST: usize = 8;

impl Finder {
    pub fn new(canaries: &[Canary]) -> Self {
        let mut caseless = Vec::new();
        let mut caseless_forms = Vec::new();
        let mut exact = Vec::new();
        let mut exact_forms = Vec::new();
        for (i, canary) in canaries.iter().enumerate() {
            caseless.push(canary.token.clone());
            caseless_forms.push((i, "plain"));
            for spelling in [canary.token.clone(), canary.token.to_uppercase()] {
                caseless.push(hex(spelling.as_bytes()));
                caseless_forms.push((i, "hex"));
            }
            for spelling in [
                canary.token.clone(),
                canary.token.to_uppercase(),
                capitalised(&canary.token),
            ] {
                for engine in [&STANDARD, &URL_SAFE] {
                    for offset in 0..3 {
                        exact.push(base64_core(engine, spelling.as_bytes(), offset));
                        exact_forms.push((i, "base64"));
                    }
                }
            }
        }
        let build = |caseless: bool, patterns: &[String]| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(caseless)
                .match_kind(MatchKind::Standard)
                .build(patterns)
                .expect("canary patterns build")
        };
        Self {
            caseless: build(true, &caseless),
            caseless_forms,
            exact: build(false, &exact),
            exact_forms,
        }
    }

    /// Every canary in `haystack`, each once, with the first form it was found in.
    pub fn find(&self, haystack: &[u8]) -> Vec<Sighting> {
        let mut found = Vec::new();
        self.search(haystack, "", 0, &mut found);
        found
    }

    fn search(&self, haystack: &[u8], wrapper: &str, depth: usize, found: &mut Vec<Sighting>) {
        let mut note = |canary: usize, form: String| {
            if !found.iter().any(|s| s.canary == canary) {
                found.push(Sighting { canary, form });
            }
        };
        let joined = without_line_breaks(haystack);
        let unescaped = json_unescaped(&json_unescaped(&joined));
        let percent = percent_decoded(&joined);
        let letters = letters_only(&unescaped);
        let reversed: Vec<u8> = letters.iter().rev().copied().collect();
        let views = [
            (haystack, ""),
            (&joined[..], "split across lines, "),
            (&unescaped[..], "JSON-escaped, "),
            (&percent[..], "URL-encoded, "),
            (&letters[..], "letter by letter, "),
            (&reversed[..], "reversed, "),
        ];
        for (view, how) in views {
            for m in self.caseless.find_overlapping_iter(view) {
                let (canary, form) = self.caseless_forms[m.pattern().as_usize()];
                note(canary, format!("{wrapper}{how}{form}"));
            }
            for m in self.exact.find_overlapping_iter(view) {
                let (canary, form) = self.exact_forms[m.pattern().as_usize()];
                note(canary, format!("{wrapper}{how}{form}"));
            }
        }
        if depth >= MAX_DEPTH {
            return;
        }
        for inflated in gzip_members(haystack) {
            self.search(&inflated, &format!("{wrapper}gzip: "), depth + 1, found);
        }
        for bytes in byte_lists(&joined) {
            self.search(&bytes, &format!("{wrapper}byte list: "), depth + 1, found);
        }
        for view in [&joined, &unescaped, &percent] {
            for decoded in base64_runs(view).flat_map(decode_base64) {
                self.search(&decoded, &format!("{wrapper}in base64: "), depth + 1, found);
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn capitalised(token: &str) -> String {
    let mut chars = token.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The part of `token`'s base64 encoding that does not depend on its neighbours, when it starts
/// `offset` bytes into a 3-byte group.
fn base64_core(engine: &GeneralPurpose, token: &[u8], offset: usize) -> String {
    let mut padded = vec![0u8; offset];
    padded.extend_from_slice(token);
    let encoded = engine.encode(&padded);
    let encoded = encoded.trim_end_matches('=');
    // Characters mixing in bits of the bytes before (0, 2 or 3 of them) and after the token.
    let front = [0, 2, 3][offset];
    let back = usize::from(!padded.len().is_multiple_of(3));
    encoded[front..encoded.len() - back].to_owned()
}

fn without_line_breaks(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match (text[i], text.get(i + 1)) {
            (b'\r' | b'\n', _) => i += 1,
            (b'\\', _) if escapes_line_break(&text[i..]) => {
                while text[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Whether `text` starts with backslashes (one, or more when JSON sits inside JSON) escaping
/// `n` or `r`.
fn escapes_line_break(text: &[u8]) -> bool {
    let slashes = text.iter().take_while(|b| **b == b'\\').count();
    matches!(text.get(slashes), Some(b'n' | b'r'))
}

/// Only the letters and digits of `text`: a canary spelled out with any separators is whole
/// again.
fn letters_only(text: &[u8]) -> Vec<u8> {
    text.iter()
        .copied()
        .filter(u8::is_ascii_alphanumeric)
        .collect()
}

/// JSON string escapes undone (`\uXXXX`, `\"`, `\\`, `\/`); anything else kept as it is.
fn json_unescaped(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\' {
            match text.get(i + 1) {
                Some(b'u') => {
                    let code = text
                        .get(i + 2..i + 6)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32);
                    if let Some(c) = code {
                        out.extend_from_slice(c.to_string().as_bytes());
                        i += 6;
                        continue;
                    }
                }
                Some(&c @ (b'"' | b'\\' | b'/')) => {
                    out.push(c);
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

fn percent_decoded(text: &[u8]) -> Vec<u8> {
    percent_encoding::percent_decode(text).collect()
}

/// Every gzip stream in `bytes`, wherever it starts, inflated.
fn gzip_members(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let starts = bytes
        .windows(3)
        .enumerate()
        .filter(|(_, magic)| *magic == [0x1f, 0x8b, 0x08])
        .map(|(start, _)| start);
    for start in starts {
        let mut inflated = Vec::new();
        // A stream cut short still yields what it holds up to the cut.
        let _ = flate2::read::GzDecoder::new(&bytes[start..]).read_to_end(&mut inflated);
        if !inflated.is_empty() {
            out.push(inflated);
        }
    }
    out
}

/// Lists of byte values as Debug and serde print a `Vec<u8>` (`[122, 113, ...]`).
fn byte_lists(text: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut list = Vec::new();
    let mut end_list = |list: &mut Vec<u8>| {
        if list.len() >= MIN_BYTE_LIST {
            out.push(std::mem::take(list));
        }
        list.clear();
    };
    let mut i = 0;
    while i < text.len() {
        if !text[i].is_ascii_digit() {
            end_list(&mut list);
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
        match std::str::from_utf8(&text[start..i]).map(str::parse::<u8>) {
            Ok(Ok(byte)) => list.push(byte),
            _ => end_list(&mut list),
        }
        if text.get(i) == Some(&b',') {
            i += 1;
            while text.get(i) == Some(&b' ') {
                i += 1;
            }
        } else {
            end_list(&mut list);
        }
    }
    end_list(&mut list);
    out
}

/// Runs of base64 characters (either alphabet) long enough to hide a canary; `=` ends a run
/// (padding, or a `key=value` separator).
fn base64_runs(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')))
        .filter(|run| run.len() >= MIN_BASE64_RUN)
}

/// A run decoded with both alphabets, from each of its first four characters (a run glued to
/// the text before it starts mid-group): the decodings that look like text or gzip.
fn decode_base64(run: &[u8]) -> Vec<Vec<u8>> {
    let lenient = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    let mut out = Vec::new();
    for alphabet in [&base64::alphabet::STANDARD, &base64::alphabet::URL_SAFE] {
        let engine = GeneralPurpose::new(alphabet, lenient);
        for skip in 0..4 {
            let usable = &run[skip..];
            let usable = &usable[..usable.len() / 4 * 4];
            if let Ok(decoded) = engine.decode(usable)
                && looks_decoded(&decoded)
            {
                out.push(decoded);
            }
        }
    }
    out
}

/// Mostly printable text, or gzip: worth searching again.
fn looks_decoded(bytes: &[u8]) -> bool {
    let printable = bytes
        .iter()
        .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        .count();
    bytes.starts_with(&[0x1f, 0x8b]) || printable * 10 >= bytes.len() * 8
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_json::json;

    use super::*;

    fn finder() -> (Finder, Canary) {
        let canary = Canary::new(Owner::Isv, "system");
        (Finder::new(std::slice::from_ref(&canary)), canary)
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn a_canary_is_found_in_every_form() {
        let (finder, canary) = finder();
        let t = canary.token.as_str();
        let (head, tail) = t.split_at(7);
        let json_escaped: String = t.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
        let url_encoded: String = t.bytes().map(|b| format!("%{b:02X}")).collect();
        let mut forms: Vec<(&str, Vec<u8>)> = vec![
            ("plain", format!("a line with {t} in it").into()),
            (
                "upper case",
                format!("{{\"x\":\"{}\"}}", t.to_uppercase()).into(),
            ),
            (
                "hex",
                format!("0x{}", hex(t.as_bytes()).to_uppercase()).into(),
            ),
            ("split", format!("{head}\n{tail}").into()),
            ("escaped newline", format!("\"{head}\\n{tail}\"").into()),
            ("JSON-escaped", json_escaped.into()),
            ("URL-encoded", format!("q={url_encoded}&x=1").into()),
            ("gzipped", gzip(format!("record: {t}").as_bytes())),
            (
                "base64 of gzip",
                STANDARD
                    .encode(gzip(format!("{{\"m\":\"{t}\"}}").as_bytes()))
                    .into(),
            ),
        ];
        let bytes: Vec<String> = t.bytes().map(|b| b.to_string()).collect();
        let gzipped = gzip(format!("{{\"m\":\"{t}\"}}").as_bytes());
        forms.extend([
            (
                "letter-spaced",
                t.chars().flat_map(|c| [c, ' ']).collect::<String>().into(),
            ),
            (
                "dotted",
                t.chars().flat_map(|c| [c, '.']).collect::<String>().into(),
            ),
            ("reversed", t.chars().rev().collect::<String>().into()),
            ("hex of upper case", hex(t.to_uppercase().as_bytes()).into()),
            (
                "Debug of bytes",
                format!("body: [{}]", bytes.join(", ")).into(),
            ),
            (
                "serde bytes",
                format!("{{\"b\":[{}]}}", bytes.join(",")).into(),
            ),
            (
                "JSON inside JSON, split",
                json!({ "body": json!({ "text": format!("{head}\n{tail}") }).to_string() })
                    .to_string()
                    .into(),
            ),
            (
                "base64 of gzip after key=",
                format!("body={} next", STANDARD.encode(&gzipped)).into(),
            ),
            (
                "base64 of gzip glued to a word",
                format!("key{}", STANDARD.encode(&gzipped)).into(),
            ),
            (
                "gzip at an offset",
                [b"header".to_vec(), gzipped.clone()].concat(),
            ),
        ]);
        for prefix in ["", "a", "ab"] {
            for engine in [&STANDARD, &URL_SAFE] {
                let text = format!("{prefix}{t}, and more text after it");
                forms.push(("base64 at an offset", engine.encode(text).into()));
                let wrapped = engine.encode(format!("{prefix}{}", t.to_uppercase()));
                let (a, b) = wrapped.split_at(wrapped.len() / 2);
                forms.push(("base64 of upper case, wrapped", format!("{a}\n{b}").into()));
            }
        }
        for (what, text) in forms {
            let found = finder.find(&text);
            assert_eq!(found.len(), 1, "{what}: {}", String::from_utf8_lossy(&text));
        }
    }

    #[test]
    fn other_text_is_not_a_sighting() {
        let (finder, canary) = finder();
        let other = Canary::new(Owner::Tenant("acme".into()), "system");
        assert_ne!(other.token, canary.token);
        let (head, _) = canary.token.split_at(10);
        for text in [
            other.token.clone(),
            format!("{head} and the rest"),
            STANDARD.encode(&other.token),
            "zq".repeat(40),
        ] {
            assert!(finder.find(text.as_bytes()).is_empty(), "{text}");
        }
    }
}
