//! The scanner: a reply turned into the same words as the fingerprints, and looked up run by run,
//! as written and in every disguise the passes below undo.

use super::fingerprint::{Fingerprints, KnownText, extend, polynomial};
use super::hash::WordHasher;
use super::words::{Normalised, for_each_word};
use super::{
    Finding, Form, LONG_WORD, LeakAction, LeakPolicy, LeakReport, MAX_DEPTH, MAX_FILLER,
    MAX_SPACED_RUN, MAX_WORD, R, REDACTION_MARKER, decode, unescape,
};

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
        self.scan_marked(text)
            .into_iter()
            .filter_map(|(f, known)| (!known).then_some(f))
            .collect()
    }

    /// Every span of `text` that repeats ISV text, in order, each marked when it is all the
    /// caller's own text coming back (no leak, but a stream holds it back like one: more text
    /// can make it part of a leak).
    pub(super) fn scan_marked(&self, text: &str) -> Vec<(Finding, bool)> {
        let mut findings = self.scan_at(text, 0);
        if let Some(sent) = &self.sent {
            findings.extend(sent.scan_at(text, 0));
            findings = merge(findings);
        }
        findings
            .into_iter()
            .map(|f| {
                let known = self.is_known(text, &f);
                (f, known)
            })
            .collect()
    }

    /// Whether a finding is, word for word as written, the caller's own text.
    fn is_known(&self, text: &str, finding: &Finding) -> bool {
        self.known
            .is_some_and(|known| known.covers(&text[finding.start..finding.start + finding.len]))
    }

    /// Where the part of `text` begins that could still turn out to be (part of) a leak once more
    /// text follows it: what a stream must hold back. Everything before it is final: more text
    /// can neither start a finding there nor change one found there. Held are the last words a
    /// run of `min_span` template words could take, with as much filler as the scanner allows
    /// between them; and, reaching further back, an open letter-spaced run, the whitespace-free
    /// stretch the hold falls in (words run together, escapes, an encoded run), an encoded run
    /// wrapped in lines or written as hex bytes, a tag still open, and the last line and the one
    /// before it when they open with two template words in reverse order (a passage written
    /// backwards line by line is found across two lines). For the ISV text as sent too.
    pub fn hold_from(&self, text: &str) -> usize {
        let own = self.hold_in(text, 0);
        self.sent
            .as_ref()
            .map_or(own, |sent| own.min(sent.hold_in(text, 0)))
    }

    /// The hold of `text`, also read as the scanner reads it with its escapes undone and its
    /// symbols read as letters (an escaped stretch holds fewer words than it has bytes).
    fn hold_in(&self, text: &str, depth: u8) -> usize {
        let mut hold = self.hold_words(text);
        // A tag still open may be closed by what comes next and read as a space, joining the
        // words before it to those after: held as if the text ended where it opens.
        if let Some(at) = unescape::open_tag(text) {
            hold = hold.min(self.hold_in(&text[..at], depth));
        }
        if depth < MAX_DEPTH {
            if let Some(view) = unescape::symbols_as_letters(text) {
                hold = hold.min(self.hold_in(&view, depth + 1));
            }
            if let Some(view) = unescape::unescaped(text) {
                let inner = self.hold_in(&view.text, depth + 1);
                hold = hold.min(view.original(inner, inner).0);
            }
        }
        hold
    }

    fn hold_words(&self, text: &str) -> usize {
        let words = self.words(text);
        let span = self.fp.min_span() as usize * (1 + MAX_FILLER);
        let Some(first) = words.len().checked_sub(span) else {
            return 0;
        };
        // The last word may be cut short: held whole, with the stretch it is in.
        let mut hold = words[first].start.min(stretch_start(text, text.len()));
        // An open letter-spaced run.
        let mut i = words.partition_point(|w| w.start < hold);
        while i > 0 && i < words.len() && words[i].single != 0 && words[i - 1].single != 0 {
            i -= 1;
            hold = words[i].start;
        }
        hold = stretch_start(text, hold);
        // An encoded run in several whitespace-separated pieces.
        let open = hold == stretch_start(text, text.len());
        let piece = &text[hold..hold + stretch_len(&text[hold..])];
        if (open && piece.bytes().all(decode::is_b64)) || decode::looks_encoded(piece) {
            loop {
                let before = text[..hold].trim_end().len();
                let start = stretch_start(text, before);
                if before == 0 || !decode::looks_encoded(&text[start..before]) {
                    break;
                }
                hold = start;
            }
        }
        // The last line and the one before it, when a passage written backwards line by line
        // could cross from it into the next line (it opens with two template words in reverse
        // order): such a finding starts where that line starts, and is known only once the
        // next line is complete.
        let mut starts = line_starts(text, &words);
        starts.push(words.len());
        for line in starts.windows(2).rev().take(2) {
            if self.opens_backwards(&words[line[0]..line[1]]) {
                hold = hold.min(words[line[0]].start);
            }
        }
        hold
    }

    /// Scans `text` and applies `policy`: what was done, and the text to use instead of `text`
    /// when anything was found (empty when withheld).
    pub fn enforce(&self, text: &str, policy: LeakPolicy) -> (LeakReport, Option<String>) {
        let findings = self.scan(text);
        let mut forms = Vec::new();
        for f in &findings {
            if !forms.contains(&f.form) {
                forms.push(f.form);
            }
        }
        let (action, replacement) = match (findings.is_empty(), policy) {
            (true, _) => (LeakAction::Passed, None),
            (false, LeakPolicy::Redact) => (
                LeakAction::Redacted,
                Some(redact(text, &findings, REDACTION_MARKER)),
            ),
            (false, LeakPolicy::Block) => (LeakAction::Withheld, Some(String::new())),
        };
        let report = LeakReport {
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

    /// Whether a line starts with two template words that follow each other in the template
    /// read backwards: the start a passage written backwards must have to go on into the next
    /// line (a single word of it is not looked for across lines).
    fn opens_backwards(&self, line: &[Word]) -> bool {
        matches!(line, [first, second, ..]
            if first.known && second.known
                && self.fp.pairs.contains(extend(second.hash, first.hash)))
    }

    /// Each line written backwards, the lines in order (a reversed passage quoted line by line):
    /// reading the words of each line in reverse only finds more than reading the whole text
    /// backwards where a run crosses a line break, so two neighbouring lines are read that way
    /// when the template words at the start of the first and the end of the second could make a
    /// run.
    fn match_reversed_lines(&self, text: &str, words: &[Word], hits: &mut Vec<Hit>) {
        let n = self.fp.min_span() as usize;
        let mut starts = line_starts(text, words);
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
                || !self.opens_backwards(first)
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
        let as_written = hits.len();
        let in_found = |k: usize, hits: &[Hit]| {
            hits[..as_written]
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
            let found_before = l > 0 && in_found(i - 1, hits);
            let found_after = r > 0 && in_found(i + 1, hits);
            if found_before && found_after {
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
            if found_before && r == 0 || found_after && l == 0 {
                continue;
            }
            // Its ASCII letters and digits: a letter of another script put into a template word
            // (`revжeal`) or between two (`codeけorange`) is read past, as a reader reads it.
            let letters: Vec<u8> = text.as_bytes()[w.start..w.end]
                .iter()
                .filter(|b| b.is_ascii_alphanumeric())
                .map(u8::to_ascii_lowercase)
                .collect();
            if letters.is_empty() || letters.len() > MAX_WORD {
                continue;
            }
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

    /// Template words run together (`Neverrevealthecode`, `rules:1.Never`) or cut apart inside
    /// (`Nev-er-rev-eal-the-co-de`): in each stretch of text without whitespace that holds a word
    /// the template does not know and, in all, as many letters as a word too long to be an
    /// ordinary one, the letters and digits are split into template words as a letter-spaced run
    /// is, and runs of them matched. A stretch inside an encoded run (`decoded`) is not: it is
    /// read decoded.
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
        // The stretch the last word looked at is in, and whether it has a long word's letters:
        // each stretch is measured once, however many words it holds.
        let mut stretch = (0, 0, false);
        for w in words {
            if w.known || w.start < done {
                continue;
            }
            if w.start >= stretch.1 {
                let start = bytes[..w.start]
                    .iter()
                    .rposition(u8::is_ascii_whitespace)
                    .map_or(0, |i| i + 1);
                let end = bytes[w.end..]
                    .iter()
                    .position(u8::is_ascii_whitespace)
                    .map_or(bytes.len(), |i| w.end + i);
                let letters = bytes[start..end]
                    .iter()
                    .filter(|b| b.is_ascii_alphanumeric())
                    .count();
                stretch = (start, end, letters >= LONG_WORD);
            }
            let (start, end, many_letters) = stretch;
            if !(many_letters || w.end - w.start >= LONG_WORD) {
                continue;
            }
            done = end;
            if decoded
                .iter()
                .any(|run| run.text_like && run.start <= start && end <= run.end)
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
/// Findings this close (in bytes) are one.
pub(super) const MERGE_GAP: usize = 3;

fn merge(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by_key(|f| (f.start, std::cmp::Reverse(f.len)));
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings {
        match out.last_mut() {
            Some(last) if f.start <= last.start + last.len + MERGE_GAP => {
                let end = (last.start + last.len).max(f.start + f.len);
                last.len = end - last.start;
                last.score = last.score.max(f.score);
            }
            _ => out.push(f),
        }
    }
    out
}

/// The first word of every line (word indices), from the line breaks; lines without words are
/// not lines.
fn line_starts(text: &str, words: &[Word]) -> Vec<usize> {
    let mut starts = vec![0];
    for at in memchr::memchr_iter(b'\n', text.as_bytes()) {
        let first = words.partition_point(|w| w.start < at);
        if first > *starts.last().expect("not empty") && first < words.len() {
            starts.push(first);
        }
    }
    starts
}

/// Where the whitespace-free stretch of `text` that ends at `at` (or goes on past it) begins:
/// ASCII whitespace, as the joined reading splits stretches.
fn stretch_start(text: &str, at: usize) -> usize {
    text.as_bytes()[..at]
        .iter()
        .rposition(u8::is_ascii_whitespace)
        .map_or(0, |i| i + 1)
}

/// Length of the whitespace-free stretch `text` starts with.
fn stretch_len(text: &str) -> usize {
    text.as_bytes()
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(text.len())
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
