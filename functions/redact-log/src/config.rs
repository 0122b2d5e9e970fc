//! redact-log's configuration, from the environment.

/// A required variable is missing or empty.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} must be set")]
pub struct Missing(pub &'static str);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub payload_records_table: String,
    pub tenants_table: String,
    pub fingerprints_table: String,
    pub fingerprint_key_id: String,
}

impl Config {
    pub fn from_env() -> Result<Self, Missing> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Missing> {
        let required = |name: &'static str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or(Missing(name))
        };
        Ok(Self {
            payload_records_table: required("PAYLOAD_RECORDS_TABLE")?,
            tenants_table: required("TENANTS_TABLE")?,
            fingerprints_table: required("FINGERPRINTS_TABLE")?,
            fingerprint_key_id: required("FINGERPRINT_KEY_ID")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_is_required() {
        let all = [
            "PAYLOAD_RECORDS_TABLE",
            "TENANTS_TABLE",
            "FINGERPRINTS_TABLE",
            "FINGERPRINT_KEY_ID",
        ];
        let config = Config::from_lookup(|n| Some(format!("v-{n}"))).unwrap();
        assert_eq!(config.fingerprint_key_id, "v-FINGERPRINT_KEY_ID");
        for missing in all {
            let got = Config::from_lookup(|n| (n != missing).then(|| "x".to_owned()));
            assert_eq!(got, Err(Missing(missing)));
        }
    }
}
