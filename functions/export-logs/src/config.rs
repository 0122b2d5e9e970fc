//! export-logs' configuration, from the environment.

use std::time::Duration;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} must be set")]
    Missing(&'static str),
    #[error("{0} must be a positive whole number")]
    Invalid(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub payload_records_table: String,
    pub tenants_table: String,
    pub export_state_table: String,
    /// How old a record must be before a scheduled export takes it.
    pub settle: Duration,
    pub records_per_object: usize,
    /// Uncompressed bytes at which an object is closed (what one object holds in memory).
    pub max_object_bytes: usize,
    /// Most objects one tenant's scheduled export writes in one run.
    pub objects_per_run: usize,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let value = |name| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &'static str| value(name).ok_or(ConfigError::Missing(name));
        let number = |name: &'static str, default: u64| match value(name) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().map_err(|_| ConfigError::Invalid(name)),
        };
        let positive = |name: &'static str, default: u64| match number(name, default)? {
            0 => Err(ConfigError::Invalid(name)),
            n => usize::try_from(n).map_err(|_| ConfigError::Invalid(name)),
        };
        Ok(Self {
            payload_records_table: required("PAYLOAD_RECORDS_TABLE")?,
            tenants_table: required("TENANTS_TABLE")?,
            export_state_table: required("EXPORT_STATE_TABLE")?,
            settle: Duration::from_secs(number("EXPORT_SETTLE_SECONDS", 60)?),
            records_per_object: positive("EXPORT_RECORDS_PER_OBJECT", 10_000)?,
            max_object_bytes: positive("EXPORT_MAX_OBJECT_BYTES", 64 * 1024 * 1024)?,
            objects_per_run: positive("EXPORT_OBJECTS_PER_RUN", 20)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(extra: &'static [(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            extra
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
                .or_else(|| name.ends_with("_TABLE").then(|| format!("t-{name}")))
        }
    }

    #[test]
    fn defaults_apply_and_bad_values_are_refused() {
        let c = Config::from_lookup(lookup(&[])).unwrap();
        assert_eq!(c.settle, Duration::from_secs(60));
        assert_eq!(c.records_per_object, 10_000);
        assert_eq!(
            Config::from_lookup(lookup(&[("EXPORT_STATE_TABLE", " ")])),
            Err(ConfigError::Missing("EXPORT_STATE_TABLE"))
        );
        for bad in [
            ("EXPORT_SETTLE_SECONDS", "soon"),
            ("EXPORT_RECORDS_PER_OBJECT", "0"),
        ] {
            let extra: &'static [(&str, &str)] = Box::leak(Box::new([bad]));
            assert_eq!(
                Config::from_lookup(lookup(extra)),
                Err(ConfigError::Invalid(bad.0))
            );
        }
    }
}
