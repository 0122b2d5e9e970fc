//! The leak guard for a reply that arrives in pieces: text is released only once the scanner has
//! seen enough after it to know it is not (the start of) a leak ([`Scanner::hold_from`]), so a
//! client gets the reply as it is generated and never a leaked span. With `redact`, a leak is
//! replaced before it is released; with `block`, the stream stops before it. At the end the whole
//! reply is scanned once more, exactly as a buffered reply is, and what was released must be the
//! start of that verdict's text.

use zeroize::Zeroizing;

use super::scanner::{MERGE_GAP, Scanner};
use super::{LeakAction, LeakPolicy, LeakReport, REDACTION_MARKER};

/// The stream must stop: the version's policy is `block` and the reply leaked, or the scan of the
/// whole reply found a leak in text already released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld;

/// How the whole reply ended.
pub struct Verdict {
    pub report: LeakReport,
    /// The rest of the reply to release after everything released so far, or [`Withheld`].
    pub rest: Result<String, Withheld>,
    /// The reply as the buffered path would return it (empty when withheld): what a payload
    /// record keeps.
    pub guarded: Zeroizing<String>,
    /// What was released before the end, as the client has it.
    pub released: Zeroizing<String>,
}

/// Released text is checked in batches of at least this many bytes (the per-delta cost of the
/// guard is a scan of the held window, so a batch of small deltas shares one).
const BATCH: usize = 64;

/// Guards one streamed reply.
pub struct StreamGuard<'s> {
    scanner: &'s Scanner<'s>,
    policy: LeakPolicy,
    /// The reply so far.
    text: Zeroizing<String>,
    /// Bytes of `text` released (or redacted) so far.
    released: usize,
    /// What was released, as the client has it.
    sent: Zeroizing<String>,
    /// Length of `text` when it was last checked.
    checked: usize,
    /// Where the last check's scan window began.
    from: usize,
}

impl<'s> StreamGuard<'s> {
    pub fn new(scanner: &'s Scanner<'s>, policy: LeakPolicy) -> Self {
        Self {
            scanner,
            policy,
            text: Zeroizing::new(String::new()),
            released: 0,
            sent: Zeroizing::new(String::new()),
            checked: 0,
            from: 0,
        }
    }

    /// Takes the next piece of the reply and returns what may be released now (often nothing:
    /// the text is held until enough follows it).
    pub fn push(&mut self, delta: &str) -> Result<String, Withheld> {
        self.text.push_str(delta);
        // A long window (a line that goes on and on) is scanned less often, so the scans of a
        // reply add up to a few times its length.
        let batch = BATCH.max((self.text.len() - self.from) / 8);
        if self.text.len() < self.checked + batch {
            return Ok(String::new());
        }
        self.checked = self.text.len();
        self.from = window_start(&self.text, self.released);
        self.release(self.from)
    }

    /// The reply is complete: scans it whole, as the buffered path does.
    pub fn finish(self) -> Verdict {
        let (report, replacement) = self.scanner.enforce(&self.text, self.policy);
        let guarded = Zeroizing::new(replacement.unwrap_or_else(|| self.text.to_string()));
        let rest = match guarded.strip_prefix(self.sent.as_str()) {
            Some(rest) if report.action != LeakAction::Withheld => Ok(rest.to_owned()),
            _ => Err(Withheld),
        };
        Verdict {
            report,
            rest,
            guarded,
            released: self.sent,
        }
    }

    /// Releases what is final: up to the hold, with leaks found before it redacted (or the
    /// stream stopped), and no further than the start of anything found that may still grow.
    /// The scan starts at `from`, the start of a line some words before the released text, so
    /// that a run reaching into that text is seen whole; what lies before `released` is final.
    fn release(&mut self, from: usize) -> Result<String, Withheld> {
        let window = &self.text[from..];
        let mut safe = from + self.scanner.hold_from(window);
        if safe <= self.released {
            return Ok(String::new());
        }
        let mut out = String::new();
        for (f, known) in self.scanner.scan_marked(window) {
            let (start, end) = (from + f.start, from + f.start + f.len);
            if end <= self.released {
                continue;
            }
            // Findings within a few bytes of each other are one: a span that ends this near
            // the hold may go on past it, or join one that does (the caller's own text too,
            // which then is part of a leak).
            if start >= safe || end + MERGE_GAP >= safe {
                safe = safe.min(start.max(self.released));
                break;
            }
            if known {
                continue;
            }
            if self.policy == LeakPolicy::Block {
                return Err(Withheld);
            }
            out.push_str(&self.text[self.released..start.max(self.released)]);
            out.push_str(REDACTION_MARKER);
            self.released = end;
        }
        if safe > self.released {
            out.push_str(&self.text[self.released..safe]);
            self.released = safe;
        }
        self.sent.push_str(&out);
        Ok(out)
    }
}

/// Where to start scanning a reply of which `released` bytes are final: the start of the line
/// holding the point as many words before them as a run with filler can take
/// (whitespace-separated, so at least as many of the scanner's words). A line is read whole, as
/// the scanner reads lines (a passage written backwards is found line by line).
fn window_start(text: &str, released: usize) -> usize {
    const WORDS: usize = 40;
    let before = &text.as_bytes()[..released];
    let mut seen = 0;
    let mut has_word = false;
    let mut point = 0;
    for (i, b) in before.iter().enumerate().rev() {
        if b.is_ascii_whitespace() {
            // Only a stretch with a letter or digit in it holds a word (dashes do not).
            seen += usize::from(has_word);
            has_word = false;
            if seen >= WORDS {
                point = i;
                break;
            }
        } else {
            has_word |= b.is_ascii_alphanumeric() || !b.is_ascii();
        }
    }
    before[..point]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)
}
