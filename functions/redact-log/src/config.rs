//! redact-log's configuration, from the environment.

use promptseal::env::{Env, EnvError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub payload_records_table: String,
    pub tenants_table: String,
    pub fingerprints_table: String,
    pub fingerprint_key_id: String,
}

impl Config {
    pub fn read(env: &Env<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        Ok(Self {
            payload_records_table: env.required("PAYLOAD_RECORDS_TABLE")?,
            tenants_table: env.required("TENANTS_TABLE")?,
            fingerprints_table: env.required("FINGERPRINTS_TABLE")?,
            fingerprint_key_id: env.required("FINGERPRINT_KEY_ID")?,
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
        let config = Config::read(&Env::new(|n: &str| Some(format!("v-{n}")))).unwrap();
        assert_eq!(config.fingerprint_key_id, "v-FINGERPRINT_KEY_ID");
        for missing in all {
            let got = Config::read(&Env::new(|n: &str| (n != missing).then(|| "x".to_owned())));
            assert_eq!(got, Err(EnvError::Missing(missing)));
        }
    }
}
