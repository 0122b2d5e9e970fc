//! Splitting a text or Markdown document into the chunks that are embedded and retrieved: by
//! headings first (each chunk remembers the headings it sits under), then by paragraphs packed up
//! to a token budget, and a paragraph longer than the budget by sentences, then words, with an
//! overlap between its pieces so that no sentence is only ever seen cut in two.
//!
//! Tokens are estimated as whitespace-separated words: embedding models count more (a word is
//! about 1.3 tokens in English), so a budget in words stays under the model's limit in tokens
//! with the same margin.

/// How large chunks get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkBudget {
    /// Most words in one chunk.
    pub max_words: usize,
    /// Words a piece of a long paragraph repeats from the end of the piece before it.
    pub overlap_words: usize,
}

impl Default for ChunkBudget {
    fn default() -> Self {
        Self {
            max_words: 200,
            overlap_words: 30,
        }
    }
}

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The headings the chunk sits under, outermost first, joined with " > " (empty before the
    /// first heading).
    pub section: String,
    pub text: String,
}

/// The document's chunks, in document order. Blank text gives none.
pub fn split(document: &str, budget: ChunkBudget) -> Vec<Chunk> {
    let max = budget.max_words.max(1);
    let overlap = budget.overlap_words.min(max / 2);
    sections(document)
        .into_iter()
        .flat_map(|section| {
            let name = section.headings.join(" > ");
            pack(&section.paragraphs, max, overlap)
                .into_iter()
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
    let mut fenced = false;
    let mut offset = 0;
    for line in document.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let trimmed = line.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            start.get_or_insert(line_start);
            end = offset;
            continue;
        }
        if !fenced && let Some((level, title)) = heading(trimmed) {
            push(&mut out, document, start.take(), end);
            trail.retain(|(l, _)| *l < level);
            trail.push((level, title.to_owned()));
            out.push(Section {
                headings: trail.iter().map(|(_, t)| t.clone()).collect(),
                paragraphs: Vec::new(),
            });
            continue;
        }
        if trimmed.is_empty() && !fenced {
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

/// An ATX heading's level and title.
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    let rest = &line[level..];
    if !(1..=6).contains(&level) || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let title = rest.trim().trim_end_matches('#').trim_end();
    (!title.is_empty()).then_some((level, title))
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
    fn a_word_longer_than_anything_still_terminates() {
        let text = "a ".repeat(1000);
        let chunks = split(&text, budget(1, 5));
        assert_eq!(chunks.len(), 1000);
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
