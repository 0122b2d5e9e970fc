//! redact-log: wiring only. Telemetry, configuration from the environment, AWS clients built once
//! per cold start, then the handler behind lambda_runtime.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use promptseal::store::records::PayloadStore;
use promptseal::store::sealed::SealedStores;
use promptseal::store::tenants::TenantRegistry;
use serde_json::value::RawValue;

use redact_log::config::Config;
use redact_log::handler::{self, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    promptseal::telemetry::init(env!("CARGO_CRATE_NAME"));
    let config = Config::read(&promptseal::env::process())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let ddb =
        promptseal::store::records::writer_client(aws_sdk_dynamodb::config::Builder::from(&sdk));
    let deps = Deps {
        records: PayloadStore::new(ddb.clone(), config.payload_records_table),
        tenants: TenantRegistry::new(ddb.clone(), config.tenants_table),
        fingerprints: SealedStores::new(&sdk, ddb)
            .fingerprints(config.fingerprints_table, config.fingerprint_key_id),
        s3: aws_sdk_s3::Client::new(&sdk),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            handler::handle(deps, event.payload.get().as_bytes()).await
        },
    ))
    .await
}
