//! Splitting a text or Markdown document into the chunks that are embedded and retrieved: by
//! headings first (each chunk remembers the headings it sits under), then by paragraphs packed up
//! to a token budget, and a paragraph longer than the budget by sentences, then words, with an
//! overlap between its pieces so that no sentence is only ever seen cut in two.
//!
//! A chunk is bounded twice: in whitespace-separated words (the token budget; models count more
//! tokens than words, about 1.3 a word in English prose, more in code and in other languages),
//! and in characters, because a "word" can be a URL, a base64 blob or a paragraph of a language
//! written without spaces, and because Cohere Embed v3 refuses a text over 2,048 characters
//! outright. A chunk over the character bound is cut at its last space that fits, else between
//! characters.

/// How large chunks get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkBudget {
    /// Most words in one chunk.
    pub max_words: usize,
    /// Words a piece of a long paragraph repeats from the end of the piece before it.
    pub overlap_words: usize,
    /// Most characters in one chunk.
    pub max_chars: usize,
}

impl Default for ChunkBudget {
    /// 200 words, 30 of overlap, 1,800 characters: within Titan V2's and Cohere v3's limits.
    fn default() -> Self {
        Self {
            max_words: 200,
            overlap_words: 30,
            max_chars: 1800,
        }
    }
}

/// One chunk of a document. Its `Debug` shows sizes, never the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The headings the chunk sits under, outermost first, joined with " > " (empty before the
    /// first heading).
    pub section: String,
    pub text: String,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("section_chars", &self.section.chars().count())
            .field("text_chars", &self.text.chars().count())
            .finish()
    }
}

/// The document's chunks, in document order. Blank text gives none.
pub fn split(document: &str, budget: ChunkBudget) -> Vec<Chunk> {
    let max = budget.max_words.max(1);
    let overlap = budget.overlap_words.min(max / 2);
    let max_chars = budget.max_chars.max(1);
    sections(document)
        .into_iter()
        .flat_map(|section| {
            let name = section.headings.join(" > ");
            pack(&section.paragraphs, max, overlap)
                .into_iter()
                .flat_map(move |text| fit_chars(text, max_chars))
                .map(move |text| Chunk {
                    section: name.clone(),
                    text,
                })
        })
        .collect()
}

/// Paragraphs packed into texts of at most `max` words; a paragraph longer than that alone in
/// [`pieces`].
fn pack(paragraphs: &[&str], max: usize, overlap: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut packed: Vec<&str> = Vec::new();
    let mut words = 0;
    for paragraph in paragraphs {
        let n = paragraph.split_whitespace().count();
        if !packed.is_empty() && (n > max || words + n > max) {
            out.push(packed.join("\n\n"));
            packed.clear();
            words = 0;
        }
        if n > max {
            out.extend(pieces(paragraph, max, overlap));
        } else {
            packed.push(paragraph);
            words += n;
        }
    }
    if !packed.is_empty() {
        out.push(packed.join("\n\n"));
    }
    out
}

struct Section<'a> {
    headings: Vec<String>,
    paragraphs: Vec<&'a str>,
}

/// The document cut at its Markdown headings (`#` to `######`, outside fenced code), each part
/// with its heading trail and its paragraphs (runs of non-blank lines; a fenced code block is
/// one paragraph, blank lines and all).
fn sections(document: &str) -> Vec<Section<'_>> {
    let mut out = vec![Section {
        headings: Vec::new(),
        paragraphs: Vec::new(),
    }];
    let mut trail: Vec<(usize, String)> = Vec::new();
    // Byte range of the paragraph being read, and whether it is inside a code fence.
    let mut start: Option<usize> = None;
    let mut end = 0;
    let mut fenced: Option<char> = None;
    let mut offset = 0;
    for line in document.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let trimmed = line.trim();
        // Up to three spaces of indentation: more makes an indented code line.
        let indented = line.len() - line.trim_start_matches(' ').len() > 3;
        if !indented && let Some(change) = fence(trimmed, fenced) {
            fenced = change;
            start.get_or_insert(line_start);
            end = offset;
            continue;
        }
        if fenced.is_none()
            && !indented
            && let Some((level, title)) = heading(trimmed)
        {
            push(&mut out, document, start.take(), end);
            trail.retain(|(l, _)| *l < level);
            trail.push((level, title.to_owned()));
            out.push(Section {
                headings: trail.iter().map(|(_, t)| t.clone()).collect(),
                paragraphs: Vec::new(),
            });
            continue;
        }
        if trimmed.is_empty() && fenced.is_none() {
            push(&mut out, document, start.take(), end);
            continue;
        }
        start.get_or_insert(line_start);
        end = offset;
    }
    push(&mut out, document, start, end);
    out.retain(|s| !s.paragraphs.is_empty());
    out
}

fn push<'a>(out: &mut [Section<'a>], document: &'a str, start: Option<usize>, end: usize) {
    if let Some(start) = start {
        let paragraph = document[start..end].trim();
        if !paragraph.is_empty() {
            out.last_mut()
                .expect("there is always a section")
                .paragraphs
                .push(paragraph);
        }
    }
}

/// Whether `line` opens or closes a code fence, and what the fence is then: a run of three or
/// more backticks (whose line holds no other backtick, or it is inline code) or tildes opens one;
/// only a run of the same character, alone on its line, closes it.
fn fence(line: &str, open: Option<char>) -> Option<Option<char>> {
    let c = line.chars().next().filter(|c| matches!(c, '`' | '~'))?;
    let run = line.chars().take_while(|&x| x == c).count();
    if run < 3 {
        return None;
    }
    let rest = &line[run..];
    match open {
        None if c == '~' || !rest.contains('`') => Some(Some(c)),
        Some(o) if o == c && rest.trim().is_empty() => Some(None),
        _ => None,
    }
}

/// An ATX heading's level and title (a closing run of `#` is dropped only after a space, so
/// `# Using C#` keeps its `#`).
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    let rest = &line[level..];
    if !(1..=6).contains(&level) || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let rest = rest.trim();
    let without = rest.trim_end_matches('#');
    let title = if without.is_empty() || without.ends_with([' ', '\t']) {
        without.trim_end()
    } else {
        rest
    };
    (!title.is_empty()).then_some((level, title))
}

/// `text` in pieces of at most `max` characters, each cut at its last whitespace that fits, or
/// between characters where there is none.
fn fit_chars(text: String, max: usize) -> Vec<String> {
    if text.chars().count() <= max {
        return vec![text];
    }
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let cut = if limit == rest.len() {
            limit
        } else {
            rest[..limit]
                .rfind(char::is_whitespace)
                .filter(|&i| i > 0)
                .unwrap_or(limit)
        };
        let piece = rest[..cut].trim();
        if !piece.is_empty() {
            out.push(piece.to_owned());
        }
        rest = rest[cut..].trim_start();
    }
    out
}

/// A paragraph longer than `max` words in pieces of at most `max` words: whole sentences where
/// they fit, each piece starting with the last `overlap` words of the one before.
fn pieces(paragraph: &str, max: usize, overlap: usize) -> Vec<String> {
    let words: Vec<&str> = paragraph.split_whitespace().collect();
    // Where each sentence ends (index after its last word).
    let ends: Vec<usize> = words
        .iter()
        .enumerate()
        .filter(|(_, w)| w.ends_with(['.', '!', '?']))
        .map(|(i, _)| i + 1)
        .chain(std::iter::once(words.len()))
        .collect();
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let limit = (from + max).min(words.len());
        // The last sentence end that fits, if it leaves the piece at least half full; else a
        // cut between words.
        let to = ends
            .iter()
            .copied()
            .rev()
            .find(|&e| e > from && e <= limit && e - from >= max / 2)
            .unwrap_or(limit);
        out.push(words[from..to].join(" "));
        if to == words.len() {
            return out;
        }
        from = to - overlap.min(to - from - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_words: usize, overlap_words: usize) -> ChunkBudget {
        ChunkBudget {
            max_words,
            overlap_words,
            max_chars: 10_000,
        }
    }

    #[test]
    fn headings_cut_chunks_and_name_their_section() {
        let doc = "Intro line.\n\n# Billing\n\nInvoices go out monthly.\n\n## Refunds ##\n\n\
                   Refunds take five days.\n\n# Support\n\nCall us.\n";
        let chunks = split(doc, ChunkBudget::default());
        let got: Vec<(&str, &str)> = chunks
            .iter()
            .map(|c| (c.section.as_str(), c.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("", "Intro line."),
                ("Billing", "Invoices go out monthly."),
                ("Billing > Refunds", "Refunds take five days."),
                ("Support", "Call us."),
            ]
        );
    }

    #[test]
    fn paragraphs_are_packed_up_to_the_budget() {
        let doc = "one two three\n\nfour five\n\nsix seven eight nine\n";
        let chunks = split(doc, budget(5, 0));
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            ["one two three\n\nfour five", "six seven eight nine"]
        );
    }

    #[test]
    fn a_long_paragraph_is_cut_at_sentences_with_overlap() {
        let paragraph = (0..40)
            .map(|i| format!("w{i}{}", if i % 5 == 4 { "." } else { "" }))
            .collect::<Vec<_>>()
            .join(" ");
        let chunks = split(&paragraph, budget(12, 3));
        let all: Vec<Vec<&str>> = chunks.iter().map(|c| c.text.split(' ').collect()).collect();
        assert!(all.iter().all(|p| p.len() <= 12), "{all:?}");
        // Cut after a sentence (every fifth word ends one), and the next piece repeats 3 words.
        assert!(all[0].last().unwrap().ends_with('.'), "{all:?}");
        assert_eq!(all[1][..3], all[0][all[0].len() - 3..]);
        // Every word is in some chunk, in order.
        let mut seen: Vec<&str> = all[0].clone();
        for piece in &all[1..] {
            seen.extend(&piece[3..]);
        }
        assert_eq!(seen.join(" "), paragraph);
    }

    #[test]
    fn code_fences_are_kept_whole_and_their_hashes_are_not_headings() {
        let doc = "# Setup\n\n```sh\n# not a heading\n\nmake install\n```\n\nDone.\n";
        let chunks = split(doc, ChunkBudget::default());
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].section, "Setup");
        assert!(chunks[0].text.contains("# not a heading\n\nmake install"));
        assert!(chunks[0].text.ends_with("Done."));
    }

    #[test]
    fn blank_documents_give_no_chunks_and_hashes_without_space_are_text() {
        assert!(split("", ChunkBudget::default()).is_empty());
        assert!(split(" \n\n \t\n", ChunkBudget::default()).is_empty());
        let chunks = split("#hashtag talk\n", ChunkBudget::default());
        assert_eq!(
            (chunks[0].section.as_str(), chunks[0].text.as_str()),
            ("", "#hashtag talk")
        );
    }

    #[test]
    fn a_one_word_budget_still_terminates() {
        let text = "a ".repeat(1000);
        let chunks = split(&text, budget(1, 5));
        assert_eq!(chunks.len(), 1000);
    }

    #[test]
    fn no_chunk_is_over_the_character_bound_whatever_its_words() {
        let blob = "QUJD".repeat(2000); // one 8,000-character "word"
        let cjk = "数据保护".repeat(700); // 2,800 characters without a space
        let prose = "word ".repeat(150);
        for text in [blob.as_str(), cjk.as_str(), prose.as_str()] {
            let chunks = split(text, ChunkBudget::default());
            assert!(
                chunks.iter().all(|c| c.text.chars().count() <= 1800),
                "{chunks:?}"
            );
            let joined: String = chunks.iter().map(|c| c.text.replace(' ', "")).collect();
            assert_eq!(joined, text.replace(' ', ""));
        }
        let prose = split(&"word ".repeat(500), budget(1000, 0));
        assert!(
            prose
                .iter()
                .all(|c| !c.text.starts_with(' ') && !c.text.ends_with("wo"))
        );
    }

    #[test]
    fn fences_headings_and_indented_code_are_read_as_markdown_reads_them() {
        let doc = "# Using C#\n\n```js\nlet a = 1; // ~~~ not a fence\n```\n\n\
                   Inline ```code``` stays text.\n\n    # indented code, not a heading\n\n\
                   ## Next ##\n\nBody.\n";
        let chunks = split(doc, ChunkBudget::default());
        let sections: Vec<&str> = chunks.iter().map(|c| c.section.as_str()).collect();
        assert_eq!(sections, ["Using C#", "Using C# > Next"], "{chunks:?}");
        assert!(chunks[0].text.contains("# indented code"));
        assert_eq!(chunks[1].text, "Body.");
    }

    #[test]
    fn debug_shows_sizes_never_text() {
        let chunk = &split("# Secret\n\nThe ISV's rules.", ChunkBudget::default())[0];
        let shown = format!("{chunk:?}");
        assert!(
            !shown.contains("rules") && !shown.contains("Secret"),
            "{shown}"
        );
    }

    proptest::proptest! {
        /// Whatever the document, no chunk is over budget and no word of it is lost.
        #[test]
        fn chunks_fit_the_budget_and_keep_every_word(
            lines in proptest::collection::vec(
                "(# [a-c]{1,3}|[a-e]{1,4}( [a-e]{1,4}){0,30}[.]?|)", 0..60),
            max_words in 1usize..40,
            overlap_words in 0usize..10,
        ) {
            let doc = lines.join("\n");
            let chunks = split(&doc, budget(max_words, overlap_words));
            let mut missing: std::collections::HashMap<&str, i64> = Default::default();
            for line in lines.iter().filter(|l| !l.starts_with("# ")) {
                for w in line.split_whitespace() {
                    *missing.entry(w).or_default() += 1;
                }
            }
            for chunk in &chunks {
                let words: Vec<&str> = chunk.text.split_whitespace().collect();
                proptest::prop_assert!(words.len() <= max_words, "{chunk:?}");
                for w in words {
                    *missing.entry(w).or_default() -= 1;
                }
            }
            proptest::prop_assert!(missing.values().all(|&n| n <= 0), "{missing:?}");
        }
    }
}
