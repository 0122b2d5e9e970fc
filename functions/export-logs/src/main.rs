//! export-logs: wiring only. Telemetry, configuration from the environment, AWS clients built once
//! per cold start, then the handler behind lambda_runtime.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use promptseal::store::records::PayloadStore;
use promptseal::store::tenants::TenantRegistry;

use export_logs::config::Config;
use export_logs::export::{Exporter, ObjectLimits};
use export_logs::handler::{self, Deps};
use export_logs::state::ExportState;

#[tokio::main]
async fn main() -> Result<(), Error> {
    promptseal::telemetry::init(env!("CARGO_CRATE_NAME"));
    let config = Config::read(&promptseal::env::process())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let deps = Deps {
        tenants: TenantRegistry::new(ddb.clone(), config.tenants_table),
        exporter: Exporter {
            records: PayloadStore::new(ddb.clone(), config.payload_records_table),
            state: ExportState::new(ddb, config.export_state_table),
            sdk,
            settle: config.settle,
            limits: ObjectLimits {
                records: config.records_per_object,
                bytes: config.max_object_bytes,
            },
            objects_per_run: config.objects_per_run,
        },
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            handler::handle(deps, event.payload).await
        },
    ))
    .await
}
