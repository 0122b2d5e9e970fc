//! What invoke attaches to every model call as Bedrock's `requestMetadata`, and what redact-log
//! reads back from the invocation log: whose request it was and which block is whose. Ids and the
//! block map only, never text. One type for both sides, so a key renamed in one cannot leave every
//! record unattributed in the other.

use std::collections::HashMap;

/// The longest `requestMetadata` value Bedrock accepts: a longer block map is split over
/// several keys.
const MAX_VALUE: usize = 256;
/// The most `requestMetadata` keys Bedrock accepts.
const MAX_KEYS: usize = 16;
/// The keys that carry ids: tenant, principal, template id, template version, request id.
const ID_KEYS: usize = 5;
/// The longest block map a request can carry beside its ids.
pub const MAX_BLOCK_MAP_LEN: usize = (MAX_KEYS - ID_KEYS) * MAX_VALUE;

const TENANT: &str = "tenant_id";
const PRINCIPAL: &str = "principal";
const TEMPLATE: &str = "template_id";
const VERSION: &str = "template_version";
const REQUEST: &str = "request_id";
/// The block map's first key; the rest are `block_map_2`, `block_map_3`, ... .
const BLOCK_MAP: &str = "block_map";

/// The request metadata of one model call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMetadata {
    pub tenant_id: String,
    pub principal: Option<String>,
    pub template_id: String,
    pub template_version: u32,
    /// invoke's request id (not Bedrock's).
    pub request_id: Option<String>,
    /// [`crate::assembly::Assembled::block_map`].
    pub block_map: String,
}

/// The block map needs more keys than Bedrock accepts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the block map does not fit Bedrock's requestMetadata limits")]
pub struct TooManyBlocks;

/// Metadata that does not say whose request it was: not promptseal's, or damaged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Unattributed(pub &'static str);

impl RequestMetadata {
    /// The key/value pairs Bedrock is sent. An id Bedrock would refuse (a principal with
    /// characters outside its set, say) is left out rather than altered; a block map too long
    /// for the keys left is refused (`template put` refuses templates that can produce one, but
    /// values captured and repeated at render time can still split a prompt further).
    pub fn to_entries(&self) -> Result<HashMap<String, String>, TooManyBlocks> {
        let version = self.template_version.to_string();
        let ids = [
            (TENANT, Some(self.tenant_id.as_str())),
            (PRINCIPAL, self.principal.as_deref()),
            (TEMPLATE, Some(self.template_id.as_str())),
            (VERSION, Some(version.as_str())),
            (REQUEST, self.request_id.as_deref()),
        ];
        let mut entries: HashMap<String, String> = ids
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v.filter(|v| allowed(v))?.to_owned())))
            .collect();
        for (i, chunk) in self.block_map.as_bytes().chunks(MAX_VALUE).enumerate() {
            let key = match i {
                0 => BLOCK_MAP.to_owned(),
                i => format!("{BLOCK_MAP}_{}", i + 1),
            };
            entries.insert(key, String::from_utf8_lossy(chunk).into_owned());
        }
        if entries.len() > MAX_KEYS {
            return Err(TooManyBlocks);
        }
        Ok(entries)
    }

    /// The metadata read back from an invocation log's `requestMetadata` (`get` looks a key up).
    pub fn from_entries<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, Unattributed> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let required = |k: &str, missing| get(k).map(str::to_owned).ok_or(Unattributed(missing));
        let template_version = get(VERSION)
            .and_then(|v| v.parse().ok())
            .ok_or(Unattributed("no template version"))?;
        let mut block_map = required(BLOCK_MAP, "no block map")?;
        for i in 2.. {
            match get(&format!("{BLOCK_MAP}_{i}")) {
                Some(part) => block_map.push_str(part),
                None => break,
            }
        }
        Ok(Self {
            tenant_id: required(TENANT, "no tenant")?,
            principal: get(PRINCIPAL).map(str::to_owned),
            template_id: required(TEMPLATE, "no template")?,
            template_version,
            request_id: get(REQUEST).map(str::to_owned),
            block_map,
        })
    }
}

/// Whether Bedrock accepts `s` as a `requestMetadata` key or value.
fn allowed(s: &str) -> bool {
    (1..=MAX_VALUE).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || ":_@$#=/+,.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn metadata(block_map: String) -> RequestMetadata {
        RequestMetadata {
            tenant_id: "acme".into(),
            principal: Some("user-1".into()),
            template_id: "support".into(),
            template_version: 3,
            request_id: Some("abc-123".into()),
            block_map,
        }
    }

    fn read(entries: &HashMap<String, String>) -> Result<RequestMetadata, Unattributed> {
        RequestMetadata::from_entries(|k| entries.get(k).map(String::as_str))
    }

    #[test]
    fn a_long_block_map_is_split_within_bedrocks_limits() {
        let long_map = format!(
            "s:I,{}",
            (0..200)
                .map(|i| format!("m{i}:IU"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let m = metadata(long_map);
        let entries = m.to_entries().unwrap();
        assert!(entries.len() <= MAX_KEYS);
        assert!(entries.iter().all(|(k, v)| allowed(k) && allowed(v)));
        assert_eq!(read(&entries), Ok(m));

        // One key more than Bedrock accepts is refused, not sent.
        let too_long = metadata("s:".to_owned() + &"IU".repeat(8 * MAX_VALUE));
        assert_eq!(too_long.to_entries(), Err(TooManyBlocks));
    }

    #[test]
    fn ids_bedrock_would_refuse_are_left_out() {
        let mut m = metadata("s:I".into());
        m.principal = Some("weird\u{0}name".into());
        let entries = m.to_entries().unwrap();
        assert!(!entries.contains_key(PRINCIPAL));
        assert_eq!(read(&entries).unwrap().principal, None);
    }

    #[test]
    fn metadata_without_an_id_is_unattributed() {
        let entries = metadata("s:I".into()).to_entries().unwrap();
        for (key, reason) in [
            (TENANT, "no tenant"),
            (TEMPLATE, "no template"),
            (VERSION, "no template version"),
            (BLOCK_MAP, "no block map"),
        ] {
            let mut damaged = entries.clone();
            damaged.remove(key);
            assert_eq!(read(&damaged), Err(Unattributed(reason)), "{key}");
        }
        let mut damaged = entries;
        damaged.insert(VERSION.into(), "two".into());
        assert_eq!(read(&damaged), Err(Unattributed("no template version")));
    }

    /// A tenant or template id that registration accepts is always sent: no record is left
    /// unattributed (and so missing) because of the id its tenant was registered under. Every
    /// character at every length registration could accept is tried.
    #[test]
    fn every_id_registration_accepts_is_sent() {
        let ids = (0..=u8::MAX)
            .map(|b| char::from(b).to_string())
            .chain((1..=4 * MAX_VALUE).map(|n| "a".repeat(n)));
        for id in ids.filter(|id| crate::template::is_id(id)) {
            let mut m = metadata("s:I".into());
            m.tenant_id = id.clone();
            m.template_id = id;
            assert_eq!(read(&m.to_entries().unwrap()), Ok(m));
        }
    }

    proptest! {
        /// Whatever invoke writes, redact-log reads back the same.
        #[test]
        fn metadata_round_trips_through_bedrocks_key_value_form(
            tenant_id in "[A-Za-z0-9_.@-]{1,64}",
            principal in proptest::option::of("[A-Za-z0-9_.@:/+=-]{1,128}"),
            template_id in "[a-z0-9-]{1,64}",
            template_version in 1u32..,
            request_id in proptest::option::of("[a-f0-9-]{1,64}"),
            block_map in "s:[IUC0-9]{0,40}(,m[0-9]{1,2}:[IUC0-9]{1,40}){0,120}",
        ) {
            let m = RequestMetadata {
                tenant_id,
                principal,
                template_id,
                template_version,
                request_id,
                block_map,
            };
            match m.to_entries() {
                Ok(entries) => {
                    prop_assert!(entries.len() <= MAX_KEYS);
                    prop_assert!(entries.iter().all(|(k, v)| allowed(k) && allowed(v)));
                    prop_assert_eq!(read(&entries), Ok(m));
                }
                Err(TooManyBlocks) => prop_assert!(m.block_map.len() > MAX_BLOCK_MAP_LEN),
            }
        }
    }
}
