//! Everything invoke's two functions (`invoke`, buffered, and `invoke-stream`) build once per cold
//! start: telemetry, configuration from the environment, and the AWS clients.

use lambda_http::Error;
use promptseal::envelope::{CachePolicy, Envelope};
use promptseal::render::Renderer;
use promptseal::store::records::PayloadStore;
use promptseal::store::sealed::{SealedStores, SealedTables};
use promptseal::store::tenants::TenantRegistry;
use promptseal::store::usage::UsageLedger;

use crate::config::Config;
use crate::handler::Deps;
use crate::logging_check::{CheckReuse, LoggingCheck};
use crate::retrieval::Retrieval;

/// The function's dependencies, for the life of the process (its handlers and the tasks that
/// finish a stream borrow them).
pub async fn deps(function: &str) -> Result<&'static Deps, Error> {
    // Both functions log from this library crate.
    promptseal::telemetry::init(env!("CARGO_CRATE_NAME"));
    let config = Config::read(&promptseal::env::process())?;
    tracing::info!(
        deployment_mode = ?config.deployment_mode,
        allowed_log_destinations = config.log_destination_allow_list.len(),
        "{function} configured"
    );
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let ddb =
        promptseal::store::records::writer_client(aws_sdk_dynamodb::config::Builder::from(&sdk));
    let cache = CachePolicy {
        max_age: config.key_cache_max_age,
        max_uses: config.key_cache_max_uses,
        ..CachePolicy::default()
    };
    let templates = SealedStores::new(&sdk, ddb.clone())
        .with_cache(cache)
        .templates(SealedTables {
            templates_table: config.templates_table.clone(),
            template_key_id: config.template_key_id.clone(),
            fingerprints_table: config.fingerprints_table.clone(),
            fingerprint_key_id: config.fingerprint_key_id.clone(),
        });
    let retrieval = config.retrieval.as_ref().map(|r| Retrieval {
        lambda: aws_sdk_lambda::Client::new(&sdk),
        function: r.function.clone(),
        chunks: Envelope::new(aws_sdk_kms::Client::new(&sdk), &r.context_key_id, cache),
    });
    let deps = Deps {
        templates,
        retrieval,
        tenants: TenantRegistry::new(ddb.clone(), config.tenants_table.clone()),
        usage: UsageLedger::new(ddb.clone(), config.usage_table.clone()),
        records: PayloadStore::new(ddb, config.payload_records_table.clone()),
        logging: LoggingCheck::new(
            aws_sdk_bedrock::Client::new(&sdk),
            config.log_destination_allow_list.clone(),
            CheckReuse {
                ttl: config.logging_check_ttl,
                max_stale: config.logging_check_max_stale,
            },
        ),
        bedrock: aws_sdk_bedrockruntime::Client::new(&sdk),
        renderer: Renderer::default(),
        config,
    };
    Ok(Box::leak(Box::new(deps)))
}
