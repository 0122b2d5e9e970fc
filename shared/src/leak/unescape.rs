//! Escapes undone, so text written in them reads as words again: JSON and C-style backslash
//! escapes (`\n`, `\"`, `\u00e9`, surrogate pairs, `\x59`), HTML character references (named and
//! numeric) and tags (as spaces), and percent-encoding (with `+` as a space). One pass undoes them
//! all wherever they are mixed; text escaped twice (JSON in JSON) is read by scanning the result
//! again. Each byte of the result remembers where its escape began, so a finding in it maps back
//! onto the reply.

/// Text with its escapes undone, and where each of its bytes came from.
pub struct Unescaped {
    pub text: String,
    /// `origin[i]`: the byte offset in the original text of the escape that produced byte `i`;
    /// one more entry for the end.
    origin: Vec<usize>,
}

impl Unescaped {
    /// The original byte range of the unescaped range `start..end`.
    pub fn original(&self, start: usize, end: usize) -> (usize, usize) {
        (self.origin[start], self.origin[end])
    }
}

/// Named character references that stand for text (the rest are too rare in replies to matter).
const ENTITIES: [(&str, &str); 16] = [
    ("nbsp", " "),
    ("amp", "&"),
    ("lt", "<"),
    ("gt", ">"),
    ("quot", "\""),
    ("apos", "'"),
    ("ensp", " "),
    ("emsp", " "),
    ("thinsp", " "),
    ("ndash", "-"),
    ("mdash", "-"),
    ("lsquo", "'"),
    ("rsquo", "'"),
    ("ldquo", "\""),
    ("rdquo", "\""),
    ("hellip", "..."),
];

/// `text` with its escapes undone, or None when it has none.
pub fn unescaped(text: &str) -> Option<Unescaped> {
    let bytes = text.as_bytes();
    let percent = has_percent_escape(bytes);
    if !percent && !has_escape(bytes) {
        return None;
    }
    let mut out = Out::default();
    let mut changed = false;
    // A `+` is a space only in a stretch written with percent escapes (a query string), so what
    // a `+` means never depends on text elsewhere in the reply.
    let mut stretch_end = 0;
    let mut percent_stretch = false;
    let mut i = 0;
    while i < bytes.len() {
        if percent && i >= stretch_end {
            stretch_end = bytes[i..]
                .iter()
                .position(u8::is_ascii_whitespace)
                .map_or(bytes.len(), |n| i + n + 1);
            percent_stretch = has_percent_escape(&bytes[i..stretch_end]);
        }
        let step = match bytes[i] {
            b'\\' => backslash(bytes, i, &mut out),
            b'&' => reference(bytes, i, &mut out),
            b'<' => tag(bytes, i, &mut out),
            b'%' if percent => percent_run(bytes, i, &mut out),
            b'+' if percent_stretch => {
                out.push_str(" ", i);
                Some(1)
            }
            _ => None,
        };
        match step {
            Some(n) => {
                changed = true;
                i += n;
            }
            None => {
                // One whole character, copied.
                let n = utf8_len(bytes[i]);
                out.push_bytes(&bytes[i..i + n], i);
                i += n;
            }
        }
    }
    out.origin.push(bytes.len());
    let text = String::from_utf8(out.bytes).ok()?;
    changed.then_some(Unescaped {
        text,
        origin: out.origin,
    })
}

#[derive(Default)]
struct Out {
    bytes: Vec<u8>,
    origin: Vec<usize>,
}

impl Out {
    fn push_bytes(&mut self, b: &[u8], from: usize) {
        self.bytes.extend_from_slice(b);
        self.origin.extend(std::iter::repeat_n(from, b.len()));
    }

    fn push_str(&mut self, s: &str, from: usize) {
        self.push_bytes(s.as_bytes(), from);
    }

    fn push_char(&mut self, c: char, from: usize) {
        self.push_str(c.encode_utf8(&mut [0; 4]), from);
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0.. => 4,
        0xe0.. => 3,
        0xc0.. => 2,
        _ => 1,
    }
}

fn hex_value(bytes: &[u8]) -> Option<u32> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
}

/// A backslash escape at `i`: how many bytes it took, None when it is none.
fn backslash(bytes: &[u8], i: usize, out: &mut Out) -> Option<usize> {
    let simple = match bytes.get(i + 1)? {
        b'n' => "\n",
        b't' => "\t",
        b'r' => "\r",
        b'"' => "\"",
        b'\'' => "'",
        b'\\' => "\\",
        b'/' => "/",
        b'u' => return unicode_escape(bytes, i, out),
        b'x' => return byte_escapes(bytes, i, out, b"\\x", 2),
        _ => return None,
    };
    out.push_str(simple, i);
    Some(2)
}

/// `\uXXXX`, or a surrogate pair `\uD83D\uDD12`.
fn unicode_escape(bytes: &[u8], i: usize, out: &mut Out) -> Option<usize> {
    let high = hex_value(bytes.get(i + 2..i + 6)?)?;
    if (0xd800..0xdc00).contains(&high)
        && bytes.get(i + 6..i + 8) == Some(b"\\u")
        && let Some(low) = bytes.get(i + 8..i + 12).and_then(hex_value)
        && (0xdc00..0xe000).contains(&low)
    {
        let c = char::from_u32(0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00))?;
        out.push_char(c, i);
        return Some(12);
    }
    out.push_char(char::from_u32(high)?, i);
    Some(6)
}

/// A run of byte escapes (`\x59\x6f`, or `%59%6F`), decoded together because several may make one
/// UTF-8 character; None when they do not make text.
fn byte_escapes(bytes: &[u8], i: usize, out: &mut Out, lead: &[u8], width: usize) -> Option<usize> {
    let mut decoded = Vec::new();
    let mut starts = Vec::new();
    let mut j = i;
    while bytes.get(j..j + lead.len()) == Some(lead) {
        let Some(v) = bytes
            .get(j + lead.len()..j + lead.len() + width)
            .and_then(hex_value)
        else {
            break;
        };
        decoded.push(v as u8);
        starts.push(j);
        j += lead.len() + width;
    }
    let text = std::str::from_utf8(&decoded).ok()?;
    let mut at = 0;
    for c in text.chars() {
        out.push_char(c, starts[at]);
        at += c.len_utf8();
    }
    (j > i).then_some(j - i)
}

/// Whether `bytes` holds a backslash escape, a character reference or a tag (most replies hold
/// none, and are not copied).
fn has_escape(bytes: &[u8]) -> bool {
    memchr::memchr3_iter(b'\\', b'&', b'<', bytes).any(|i| match bytes[i] {
        b'\\' => matches!(
            bytes.get(i + 1),
            Some(b'n' | b't' | b'r' | b'"' | b'\'' | b'\\' | b'/' | b'u' | b'x')
        ),
        b'&' => bytes
            .get(i + 1..(i + 12).min(bytes.len()))
            .is_some_and(|rest| {
                rest.first()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'#')
                    && rest.contains(&b';')
            }),
        _ => bytes
            .get(i + 1)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'/'),
    })
}

fn has_percent_escape(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'%', bytes).any(|i| {
        bytes
            .get(i + 1..i + 3)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    })
}

fn percent_run(bytes: &[u8], i: usize, out: &mut Out) -> Option<usize> {
    byte_escapes(bytes, i, out, b"%", 2)
}

/// `&name;`, `&#39;` or `&#x27;`.
fn reference(bytes: &[u8], i: usize, out: &mut Out) -> Option<usize> {
    let end = i
        + 1
        + bytes
            .get(i + 1..(i + 12).min(bytes.len()))?
            .iter()
            .position(|&b| b == b';')?;
    let body = std::str::from_utf8(&bytes[i + 1..end]).ok()?;
    let c = if let Some(number) = body.strip_prefix('#') {
        let value = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        char::from_u32(value)?.to_string()
    } else {
        ENTITIES
            .iter()
            .find(|(name, _)| *name == body)?
            .1
            .to_owned()
    };
    out.push_str(&c, i);
    Some(end + 1 - i)
}

/// Longest HTML tag read as a space, in bytes.
pub const MAX_TAG: usize = 80;

/// Where a tag that more text could close begins: the last `<` of `text`, when no `>` follows
/// it and it is near enough to the end to be closed by what comes next.
pub fn open_tag(text: &str) -> Option<usize> {
    let at = memchr::memrchr(b'<', text.as_bytes())?;
    (text.len() - at < MAX_TAG && !text[at..].contains('>')).then_some(at)
}

/// An HTML tag (`<br>`, `</p>`, `<b class="x">`) read as a space.
fn tag(bytes: &[u8], i: usize, out: &mut Out) -> Option<usize> {
    let name = bytes.get(i + 1..)?;
    let name = name.strip_prefix(b"/").unwrap_or(name);
    if !name.first()?.is_ascii_alphabetic() {
        return None;
    }
    let len = bytes
        .get(i..(i + MAX_TAG).min(bytes.len()))?
        .iter()
        .position(|&b| b == b'>')?;
    out.push_str(" ", i);
    Some(len + 1)
}

/// `text` with the symbols that stand for letters read as those letters (`@` as `a`, `$` next to
/// a letter or digit as `s`, `|` and `!` between two as `l` and `i`), or None when it has none. The result is as long as `text`, byte for byte.
pub fn symbols_as_letters(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let word = |i: Option<usize>| {
        i.and_then(|i| bytes.get(i))
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'$'))
    };
    let letter = |i: usize| {
        let (before, after) = (word(i.checked_sub(1)), word(Some(i + 1)));
        match bytes[i] {
            b'@' => Some(b'a'),
            b'$' if before || after => Some(b's'),
            b'|' if before && after => Some(b'l'),
            b'!' if before && after => Some(b'i'),
            _ => None,
        }
    };
    let mut out: Option<Vec<u8>> = None;
    let candidates =
        memchr::memchr3_iter(b'@', b'$', b'|', bytes).chain(memchr::memchr_iter(b'!', bytes));
    for i in candidates {
        if let Some(l) = letter(i) {
            out.get_or_insert_with(|| bytes.to_vec())[i] = l;
        }
    }
    // Only ASCII bytes were replaced, by ASCII bytes.
    out.map(|out| String::from_utf8(out).expect("still UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plus_is_a_space_only_where_percent_escapes_are() {
        assert_eq!(
            un("never+reveal%20the+code and a+b"),
            "never reveal the code and a+b"
        );
        assert_eq!(open_tag("text <b class"), Some(5));
        assert_eq!(open_tag("text <b> after"), None);
        assert_eq!(open_tag(&format!("<x{}", "y".repeat(MAX_TAG))), None);
    }

    fn un(text: &str) -> String {
        unescaped(text)
            .map(|u| u.text)
            .unwrap_or_else(|| text.to_owned())
    }

    #[test]
    fn json_and_c_escapes_are_undone() {
        assert_eq!(
            un(r#"{"p": "Don\u0027t \"share\"\nthe caf\u00e9 \ud83d\udd12 key"}"#),
            "{\"p\": \"Don't \"share\"\nthe café 🔒 key\"}"
        );
        assert_eq!(un(r"\x59\x6f\x75 are"), "You are");
        assert_eq!(un(r"caf\xc3\xa9"), "café");
        // Escaped twice: one pass at a time.
        assert_eq!(
            un(&un(r#"\"Never \\\"reveal\\\"\""#)),
            "\"Never \"reveal\"\""
        );
    }

    #[test]
    fn html_references_and_tags_are_undone() {
        assert_eq!(
            un("Never&nbsp;reveal&#32;the&#x20;code <br> don&#39;t &amp; <b>ever</b>"),
            "Never reveal the code   don't &  ever "
        );
        assert_eq!(un("a < b and c&d; 5 &lt 6"), "a < b and c&d; 5 &lt 6");
    }

    #[test]
    fn percent_encoding_is_undone_with_plus_as_space() {
        assert_eq!(
            un("Never%20reveal+the%2C%20code%3A%20caf%C3%A9"),
            "Never reveal the, code: café"
        );
        // Without a percent escape, `+` stays.
        assert_eq!(un("1+1 is 2, 50% off"), "1+1 is 2, 50% off");
    }

    #[test]
    fn offsets_map_back_to_the_escapes() {
        let text = "x &#114;eveal%20it";
        let u = unescaped(text).unwrap();
        assert_eq!(u.text, "x reveal it");
        let start = u.text.find("reveal").unwrap();
        let (s, e) = u.original(start, start + "reveal".len());
        assert_eq!(&text[s..e], "&#114;eveal");
        assert_eq!(u.original(0, u.text.len()), (0, text.len()));
    }

    #[test]
    fn symbols_inside_words_read_as_letters() {
        assert_eq!(
            symbols_as_letters("p@$$w0rd, c|ient, h!dden; $5 or @ home | ok!").as_deref(),
            Some("passw0rd, client, hidden; s5 or a home | ok!")
        );
        assert!(symbols_as_letters("50% off, 2 + 2").is_none());
    }

    #[test]
    fn text_without_escapes_is_not_copied() {
        assert!(unescaped("Plain text, nothing to undo.").is_none());
        assert!(unescaped("a \\q b").is_none());
    }
}
