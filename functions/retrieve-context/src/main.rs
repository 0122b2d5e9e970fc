//! retrieve-context: wiring only. Telemetry, configuration from the environment, AWS clients built
//! once per cold start, then the handler behind lambda_runtime.

use std::sync::Mutex;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use promptseal::context::retrieval::RetrieveRequest;
use promptseal::envelope::{CachePolicy, Envelope};
use promptseal::store::context::ContextStore;
use promptseal::store::templates::TemplateCatalog;
use promptseal::store::tenants::TenantRegistry;

use retrieve_context::config::{Config, Hosting};
use retrieve_context::handler::{self, Access, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    promptseal::telemetry::init(env!("CARGO_CRATE_NAME"));
    let config = Config::read(&promptseal::env::process())?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let access = match config.hosting {
        Hosting::Isv {
            tenants_table,
            templates_table,
        } => Access::Isv {
            tenants: TenantRegistry::new(ddb.clone(), tenants_table),
            templates: TemplateCatalog::new(ddb, templates_table),
        },
        Hosting::Tenant { tenant_id } => Access::Tenant { tenant_id },
    };
    let deps = Deps {
        store: ContextStore::connect(
            &sdk,
            config.context_table,
            config.vector_bucket,
            config.vector_index_bucket.as_deref(),
        ),
        vectors: Envelope::new(
            aws_sdk_kms::Client::new(&sdk),
            config.vector_key_id,
            CachePolicy::default(),
        ),
        bedrock: aws_sdk_bedrockruntime::Client::new(&sdk),
        access,
        loaded: Mutex::default(),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<RetrieveRequest>| async move {
            handler::handle(deps, event.payload).await
        },
    ))
    .await
}
