//! invoke's configuration, read once per cold start from environment variables (the same names as
//! in template.yaml and the README). A missing or malformed variable stops the cold start.

use std::time::Duration;

use promptseal::env::{Env, EnvError};

use crate::prompt_cache::{CacheMinimums, DEFAULT_CACHE_MIN_TOKENS};

/// Who runs the model, and so who may receive Bedrock's text logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentMode {
    /// In the ISV's account: text logs may go to destinations the ISV processes (redact-log).
    IsvHosted,
    /// In the tenant's account: no text log may capture a prompt, so the allow-list is empty.
    TenantHosted,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub templates_table: String,
    pub tenants_table: String,
    pub usage_table: String,
    pub template_key_id: String,
    pub fingerprints_table: String,
    pub fingerprint_key_id: String,
    pub payload_records_table: String,
    pub deployment_mode: DeploymentMode,
    /// Destinations allowed to receive text logs: `cloudwatch:<log group>` or `s3:<bucket>`.
    pub log_destination_allow_list: Vec<String>,
    /// Claim (JWT) or context key (Lambda authorizer) that names the tenant.
    pub tenant_claim: String,
    /// How long a completed logging check is reused.
    pub logging_check_ttl: Duration,
    /// How old an "ok" check may be and still stand in for a check that failed (throttled,
    /// unreachable); never longer.
    pub logging_check_max_stale: Duration,
    pub max_body_bytes: usize,
    pub model_timeout: Duration,
    pub key_cache_max_age: Duration,
    pub key_cache_max_uses: u32,
    /// retrieve-context (name or ARN) and the key context chunks are sealed under, for template
    /// versions that retrieve context (`RETRIEVE_CONTEXT_FUNCTION`, which needs
    /// `CONTEXT_KEY_ID`).
    pub retrieval: Option<RetrievalConfig>,
    /// Minimum tokens per prompt-cache checkpoint by model family (`PROMPT_CACHE_MIN_TOKENS`,
    /// `off` for no caching).
    pub prompt_cache: CacheMinimums,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrievalConfig {
    pub function: String,
    pub context_key_id: String,
}

/// The oldest a logging check may ever be when a request relies on it: the hard limit of both
/// the reuse window and the fallback after a failed check.
pub const MAX_LOGGING_CHECK_AGE_SECONDS: u64 = 30;

/// The model call's time limit unless configured: below the 30 s after which API Gateway answers
/// the client itself, with room for the work before and after the call (template.yaml's
/// timeouts are kept in this order by a test).
pub const DEFAULT_MODEL_TIMEOUT_MS: u64 = 25_000;

impl Config {
    pub fn read(env: &Env<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        let deployment_mode = match env.required("DEPLOYMENT_MODE")?.as_str() {
            "isv-hosted" => DeploymentMode::IsvHosted,
            "tenant-hosted" => DeploymentMode::TenantHosted,
            _ => {
                return Err(EnvError::invalid(
                    "DEPLOYMENT_MODE",
                    "expected isv-hosted or tenant-hosted",
                ));
            }
        };
        let allow: Vec<String> = env
            .optional("LOG_DESTINATION_ALLOW_LIST")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = allow
            .iter()
            .find(|d| !(d.starts_with("cloudwatch:") || d.starts_with("s3:")))
        {
            return Err(EnvError::invalid(
                "LOG_DESTINATION_ALLOW_LIST",
                format!("{bad:?} is neither cloudwatch:<log group> nor s3:<bucket>"),
            ));
        }
        if deployment_mode == DeploymentMode::TenantHosted && !allow.is_empty() {
            return Err(EnvError::invalid(
                "LOG_DESTINATION_ALLOW_LIST",
                "must be empty when DEPLOYMENT_MODE is tenant-hosted",
            ));
        }
        let max_age = MAX_LOGGING_CHECK_AGE_SECONDS;
        Ok(Self {
            templates_table: env.required("TEMPLATES_TABLE")?,
            tenants_table: env.required("TENANTS_TABLE")?,
            usage_table: env.required("USAGE_TABLE")?,
            template_key_id: env.required("TEMPLATE_KEY_ID")?,
            fingerprints_table: env.required("FINGERPRINTS_TABLE")?,
            payload_records_table: env.required("PAYLOAD_RECORDS_TABLE")?,
            fingerprint_key_id: env.required("FINGERPRINT_KEY_ID")?,
            deployment_mode,
            log_destination_allow_list: allow,
            tenant_claim: env
                .optional("TENANT_CLAIM")
                .unwrap_or_else(|| "tenant_id".into()),
            logging_check_ttl: Duration::from_secs(env.at_most(
                "LOGGING_CHECK_TTL_SECONDS",
                5,
                max_age,
            )?),
            logging_check_max_stale: Duration::from_secs(env.at_most(
                "LOGGING_CHECK_MAX_STALE_SECONDS",
                30,
                max_age,
            )?),
            max_body_bytes: env.number("MAX_BODY_BYTES", 256 * 1024)?,
            model_timeout: Duration::from_millis(
                env.number("MODEL_TIMEOUT_MS", DEFAULT_MODEL_TIMEOUT_MS)?,
            ),
            key_cache_max_age: Duration::from_secs(env.number("KEY_CACHE_MAX_AGE_SECONDS", 300)?),
            key_cache_max_uses: env.number("KEY_CACHE_MAX_USES", 1_000)?,
            retrieval: match env.optional("RETRIEVE_CONTEXT_FUNCTION") {
                Some(function) => Some(RetrievalConfig {
                    function,
                    context_key_id: env.required("CONTEXT_KEY_ID")?,
                }),
                None => None,
            },
            prompt_cache: CacheMinimums::parse(
                &env.optional("PROMPT_CACHE_MIN_TOKENS")
                    .unwrap_or_else(|| DEFAULT_CACHE_MIN_TOKENS.to_owned()),
            )
            .map_err(|problem| EnvError::invalid("PROMPT_CACHE_MIN_TOKENS", problem))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = [
            ("TEMPLATES_TABLE", "t"),
            ("TENANTS_TABLE", "n"),
            ("USAGE_TABLE", "u"),
            ("FINGERPRINTS_TABLE", "f"),
            ("FINGERPRINT_KEY_ID", "alias/f"),
            ("PAYLOAD_RECORDS_TABLE", "p"),
            ("TEMPLATE_KEY_ID", "alias/k"),
            ("DEPLOYMENT_MODE", "isv-hosted"),
        ]
        .iter()
        .chain(pairs)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        Env::new(move |name: &str| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_and_required_variables_are_enforced() {
        let c = Config::read(&lookup(&[])).unwrap();
        assert_eq!(c.tenant_claim, "tenant_id");
        assert_eq!(c.logging_check_ttl, Duration::from_secs(5));
        assert_eq!(c.logging_check_max_stale, Duration::from_secs(30));
        assert_eq!(c.model_timeout, Duration::from_secs(25));
        assert!(c.log_destination_allow_list.is_empty());
        assert_eq!(
            c.prompt_cache,
            CacheMinimums::parse(DEFAULT_CACHE_MIN_TOKENS).unwrap()
        );
        assert_eq!(
            Config::read(&lookup(&[("USAGE_TABLE", " ")])).unwrap_err(),
            EnvError::Missing("USAGE_TABLE")
        );
    }

    #[test]
    fn a_logging_check_is_never_relied_on_beyond_the_hard_maximum() {
        let c = Config::read(&lookup(&[
            ("LOGGING_CHECK_TTL_SECONDS", "0"),
            ("LOGGING_CHECK_MAX_STALE_SECONDS", "0"),
        ]))
        .unwrap();
        assert_eq!(c.logging_check_max_stale, Duration::ZERO);
        for name in [
            "LOGGING_CHECK_TTL_SECONDS",
            "LOGGING_CHECK_MAX_STALE_SECONDS",
        ] {
            assert_eq!(
                Config::read(&lookup(&[(name, "31")])).unwrap_err(),
                EnvError::invalid(name, "at most 30")
            );
        }
    }

    #[test]
    fn allow_list_is_parsed_and_refused_in_tenant_hosted_mode() {
        let c = Config::read(&lookup(&[(
            "LOG_DESTINATION_ALLOW_LIST",
            "cloudwatch:/aws/bedrock/isv, s3:isv-logs",
        )]))
        .unwrap();
        assert_eq!(
            c.log_destination_allow_list,
            ["cloudwatch:/aws/bedrock/isv", "s3:isv-logs"]
        );
        assert!(
            Config::read(&lookup(&[
                ("DEPLOYMENT_MODE", "tenant-hosted"),
                ("LOG_DESTINATION_ALLOW_LIST", "s3:x"),
            ]))
            .is_err()
        );
        assert!(Config::read(&lookup(&[("LOG_DESTINATION_ALLOW_LIST", "ftp:x")])).is_err());
        assert!(Config::read(&lookup(&[("DEPLOYMENT_MODE", "both")])).is_err());
        assert!(Config::read(&lookup(&[("MAX_BODY_BYTES", "lots")])).is_err());
        assert!(Config::read(&lookup(&[("PROMPT_CACHE_MIN_TOKENS", "m=lots")])).is_err());
    }

    fn deployed_template() -> serde_yaml_ng::Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The function's timeout, after checking that its model call ends (with the reserve for
    /// the work after it) before it.
    fn function_timeout_ms(template: &serde_yaml_ng::Value, name: &str) -> u64 {
        let function = &template["Resources"][name]["Properties"];
        let function_ms = function["Timeout"].as_u64().expect("a function timeout") * 1000;
        let model_ms = function["Environment"]["Variables"]["MODEL_TIMEOUT_MS"]
            .as_str()
            .map_or(DEFAULT_MODEL_TIMEOUT_MS, |v| v.parse().unwrap());
        let reserve_ms = crate::handler::DEADLINE_RESERVE.as_millis() as u64;
        assert!(
            model_ms + reserve_ms <= function_ms,
            "{name}: model timeout {model_ms} ms + reserve {reserve_ms} ms > function timeout {function_ms} ms"
        );
        function_ms
    }

    /// template.yaml keeps invoke's timeouts in order: the model call ends (with the reserve for
    /// the work after it) before the function's deadline, which comes before API Gateway gives
    /// up on the integration and answers the client itself.
    #[test]
    fn deployed_timeouts_are_in_order() {
        let template = deployed_template();
        let function_ms = function_timeout_ms(&template, "InvokeFunction");
        let reserve_ms = crate::handler::DEADLINE_RESERVE.as_millis() as u64;
        assert!(DEFAULT_MODEL_TIMEOUT_MS + reserve_ms <= function_ms);
        let function = &template["Resources"]["InvokeFunction"]["Properties"];
        let events = function["Events"].as_mapping().unwrap();
        assert!(!events.is_empty());
        for (name, event) in events {
            // HTTP APIs allow at most 30 s and default to it; REST APIs default to 29 s.
            let (default, max) = match event["Type"].as_str() {
                Some("HttpApi") => (30_000, 30_000),
                Some("Api") => (29_000, 29_000),
                other => panic!("{name:?}: unexpected event type {other:?}"),
            };
            let api_ms = event["Properties"]["TimeoutInMillis"]
                .as_u64()
                .unwrap_or(default);
            assert!(
                api_ms <= max,
                "{name:?}: {api_ms} ms is above the API's maximum"
            );
            assert!(
                function_ms < api_ms,
                "{name:?}: function timeout {function_ms} ms >= API timeout {api_ms} ms"
            );
        }
    }

    /// The streamed endpoint too: its REST API's integration (streaming allows up to 15
    /// minutes) outlasts the function.
    #[test]
    fn the_streamed_endpoints_timeouts_are_in_order() {
        let template = deployed_template();
        let function_ms = function_timeout_ms(&template, "InvokeStreamFunction");
        let post = &template["Resources"]["StreamApi"]["Properties"]["DefinitionBody"]["paths"]["/v1/invoke/stream"]
            ["post"];
        let integration = &post["x-amazon-apigateway-integration"];
        assert_eq!(integration["responseTransferMode"], "STREAM");
        let api_ms = integration["timeoutInMillis"].as_u64().unwrap();
        assert!(
            function_ms < api_ms && api_ms <= 900_000,
            "{function_ms} {api_ms}"
        );
    }

    #[test]
    fn the_model_call_ends_before_the_functions_deadline() {
        use crate::handler::{DEADLINE_RESERVE, model_timeout};
        use std::time::SystemTime;
        let configured = Duration::from_secs(25);
        assert_eq!(model_timeout(configured, None), configured);
        let far = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(model_timeout(configured, Some(far)), configured);
        let near = SystemTime::now() + Duration::from_secs(10);
        let cut = model_timeout(configured, Some(near));
        assert!(cut <= Duration::from_secs(10) - DEADLINE_RESERVE, "{cut:?}");
        assert!(cut > Duration::from_secs(7), "{cut:?}");
        let soon = SystemTime::now() + Duration::from_secs(1);
        assert_eq!(model_timeout(configured, Some(soon)), Duration::ZERO);
    }
}
