//! export-logs' configuration, from the environment.

use std::time::Duration;

use promptseal::env::{Env, EnvError};

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
    pub fn read(env: &Env<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        Ok(Self {
            payload_records_table: env.required("PAYLOAD_RECORDS_TABLE")?,
            tenants_table: env.required("TENANTS_TABLE")?,
            export_state_table: env.required("EXPORT_STATE_TABLE")?,
            settle: Duration::from_secs(env.number("EXPORT_SETTLE_SECONDS", 60)?),
            records_per_object: env.positive("EXPORT_RECORDS_PER_OBJECT", 10_000)?,
            max_object_bytes: env.positive("EXPORT_MAX_OBJECT_BYTES", 64 * 1024 * 1024)?,
            objects_per_run: env.positive("EXPORT_OBJECTS_PER_RUN", 20)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(extra: &'static [(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env::new(move |name: &str| {
            extra
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
                .or_else(|| name.ends_with("_TABLE").then(|| format!("t-{name}")))
        })
    }

    #[test]
    fn defaults_apply_and_bad_values_are_refused() {
        let c = Config::read(&lookup(&[])).unwrap();
        assert_eq!(c.settle, Duration::from_secs(60));
        assert_eq!(c.records_per_object, 10_000);
        assert_eq!(
            Config::read(&lookup(&[("EXPORT_STATE_TABLE", " ")])),
            Err(EnvError::Missing("EXPORT_STATE_TABLE"))
        );
        for bad in [
            ("EXPORT_SETTLE_SECONDS", "soon"),
            ("EXPORT_RECORDS_PER_OBJECT", "0"),
        ] {
            let extra: &'static [(&str, &str)] = Box::leak(Box::new([bad]));
            assert!(matches!(
                Config::read(&lookup(extra)),
                Err(EnvError::Invalid { name, .. }) if name == bad.0
            ));
        }
    }
}
