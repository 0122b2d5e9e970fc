//! Where invoke asks Bedrock to cache a prompt prefix. Only the template's literal opening (its
//! system source before the first tag) is ever put before the cache point: the same text for
//! every request to a version, whoever sends it and whatever its variables, so caching never
//! holds a tenant's text and a hit tells a tenant only that the version was used within the
//! cache's lifetime. The point is placed only where that opening meets the model's minimum
//! tokens per checkpoint (a table per model family, `PROMPT_CACHE_MIN_TOKENS`); below it Bedrock
//! would ignore the point.

use promptseal::syntax::literal_prefix;
use promptseal::template::CacheLayout;

/// Minimum tokens per cache checkpoint, per model family, as Bedrock documents them (model ids
/// starting with the family; a cross-region profile's `us.`/`eu.`/… prefix is looked past).
pub const DEFAULT_CACHE_MIN_TOKENS: &str = "anthropic.claude-3-7-sonnet=1024,\
anthropic.claude-sonnet-4=1024,anthropic.claude-opus-4=1024,anthropic.claude-opus-4-5=4096,\
anthropic.claude-opus-4-6=4096,anthropic.claude-3-5-haiku=2048,anthropic.claude-haiku-4-5=4096,\
amazon.nova=1000";

/// The table: model family, minimum tokens before a checkpoint. Empty: no caching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMinimums(Vec<(String, u64)>);

impl CacheMinimums {
    /// `family=tokens,family=tokens`, or `off` for no caching.
    pub fn parse(table: &str) -> Result<Self, String> {
        if table.trim() == "off" {
            return Ok(Self(Vec::new()));
        }
        table
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let (family, tokens) = entry
                    .split_once('=')
                    .ok_or_else(|| format!("{entry:?} is not family=tokens"))?;
                let tokens: u64 = tokens
                    .trim()
                    .parse()
                    .ok()
                    .filter(|t| *t > 0)
                    .ok_or_else(|| format!("{entry:?}: tokens must be a positive whole number"))?;
                Ok((family.trim().to_owned(), tokens))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The minimum for `model_id` (a model id, an inference profile id or ARN): the longest
    /// family it starts with, or none when no family is its own.
    pub fn for_model(&self, model_id: &str) -> Option<u64> {
        let id = model_id.rsplit('/').next().unwrap_or(model_id);
        let past_profile = id.split_once('.').map(|(_, rest)| rest);
        self.0
            .iter()
            .filter(|(family, _)| {
                id.starts_with(family.as_str())
                    || past_profile.is_some_and(|p| p.starts_with(family))
            })
            .max_by_key(|(family, _)| family.len())
            .map(|(_, tokens)| *tokens)
    }

    /// The text to cache for a version whose system source is `system` on `model_id`: its
    /// literal opening, or (laid out `values-after`) the whole text as written, when that is
    /// long enough to be cached.
    pub fn prefix<'a>(
        &self,
        system: &'a str,
        layout: CacheLayout,
        model_id: &str,
    ) -> Option<&'a str> {
        let minimum = self.for_model(model_id)?;
        let cached = match layout {
            CacheLayout::Opening => literal_prefix(system),
            CacheLayout::ValuesAfter => system.trim_end(),
        };
        (estimate_tokens(cached) >= minimum).then_some(cached)
    }
}

/// Tokens of `text`, estimated generously without the model's tokenizer: the larger of its words
/// and marks and one token per four bytes. Over-estimating costs nothing (Bedrock ignores a point
/// below the minimum); under-estimating would forgo the cache.
pub fn estimate_tokens(text: &str) -> u64 {
    let mut units = 0u64;
    let mut in_word = false;
    for c in text.chars() {
        let word = c.is_alphanumeric();
        if (word && !in_word) || (!word && !c.is_whitespace()) {
            units += 1;
        }
        in_word = word;
    }
    units.max(text.len().div_ceil(4) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_family_decides_and_profiles_are_looked_past() {
        let table = CacheMinimums::parse(DEFAULT_CACHE_MIN_TOKENS).unwrap();
        let cases = [
            ("anthropic.claude-3-7-sonnet-20250219-v1:0", Some(1024)),
            ("us.anthropic.claude-sonnet-4-20250514-v1:0", Some(1024)),
            ("anthropic.claude-opus-4-5-20251101-v1:0", Some(4096)),
            ("anthropic.claude-opus-4-1-20250805-v1:0", Some(1024)),
            (
                "global.anthropic.claude-haiku-4-5-20251001-v1:0",
                Some(4096),
            ),
            ("eu.amazon.nova-pro-v1:0", Some(1000)),
            (
                "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0",
                Some(2048),
            ),
            ("anthropic.claude-3-haiku-20240307-v1:0", None),
            ("meta.llama3-70b-instruct-v1:0", None),
        ];
        for (model, minimum) in cases {
            assert_eq!(table.for_model(model), minimum, "{model}");
        }
        assert_eq!(
            CacheMinimums::parse("off").unwrap().for_model(cases[0].0),
            None
        );
        for bad in ["anthropic.claude", "x=0", "x=many"] {
            assert!(CacheMinimums::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_long_enough_literal_opening_is_cached() {
        let table = CacheMinimums::parse("m=10").unwrap();
        let long = "One two three four five six seven eight nine ten. {{ q }}";
        let opening = CacheLayout::Opening;
        assert_eq!(
            table.prefix(long, opening, "m-1"),
            Some("One two three four five six seven eight nine ten.")
        );
        let early = "One two three. {{ q }} four five six seven eight nine";
        assert_eq!(table.prefix(early, opening, "m"), None);
        // Laid out values-after, the whole text as written is cached.
        assert_eq!(
            table.prefix(early, CacheLayout::ValuesAfter, "m"),
            Some(early)
        );
        let first = "{{ q }} One two three four five six seven eight nine ten.";
        assert_eq!(table.prefix(first, opening, "m"), None);
        assert_eq!(table.prefix(long, opening, "other"), None);
    }

    #[test]
    fn tokens_are_estimated_generously() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("Hello, world!"), 4);
        // Long words: a token per four bytes.
        assert_eq!(estimate_tokens("internationalisation"), 5);
    }
}
