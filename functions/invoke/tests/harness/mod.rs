//! Runs the real invoke binary behind cargo-lambda's Lambda runtime emulator (devstack's
//! `EmulatedFunction`), against the local stack, and drives it with the API Gateway events in
//! `events/invoke/`. Each test gets fresh tables and key, its own function
//! process, and a model id of its own on the Bedrock stand-in.

#![allow(dead_code)] // each test target uses its own subset of these helpers

use std::path::{Path, PathBuf};

use aws_config::SdkConfig;
use bedrock_standin::Control;
use bedrock_standin::converse::Behaviour;
use promptseal::leak::{LeakPolicy, LeakSettings};
use promptseal::render::Renderer;
use promptseal::store::records::PayloadStore;
use promptseal::store::sealed::SealedStores;
use promptseal::store::templates::TemplateStore;
use promptseal::store::tenants::TenantRegistry;
use promptseal::store::usage::UsageLedger;
use promptseal::template::{InferenceBounds, MessagePart, Role, TemplateDefinition, VariableSpec};
use promptseal::tenant::{PayloadLogging, Quotas, TenantSpec};
use promptseal_devstack::{EmulatedFunction, FunctionSpec, Resources};
use serde_json::Value;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A sample event from `events/invoke/`.
pub fn event(name: &str) -> Value {
    let path = root().join("events/invoke").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The event with its body replaced.
pub fn with_body(mut event: Value, body: &Value) -> Value {
    event["body"] = Value::String(body.to_string());
    event
}

/// An HTTP API event whose JWT names `tenant`.
pub fn as_tenant(mut event: Value, tenant: &str) -> Value {
    event["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = tenant.into();
    event
}

/// The API Gateway response's status and parsed body.
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub raw: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let headers = &self.raw["headers"];
        let multi = &self.raw["multiValueHeaders"];
        headers[name]
            .as_str()
            .map(str::to_owned)
            .or_else(|| multi[name][0].as_str().map(str::to_owned))
    }
}

/// A definition with a unique model id, so the stand-in's behaviour can be set for this test only.
pub fn template(id: &str, model_id: &str, system: &str) -> TemplateDefinition {
    TemplateDefinition {
        id: id.into(),
        model_id: model_id.into(),
        inference: InferenceBounds {
            max_tokens: 400,
            temperature_min: 0.0,
            temperature_max: 0.7,
            temperature_default: 0.2,
        },
        guardrail: None,
        leak_guard: Default::default(),
        retrieval: None,
        prompt_cache: Default::default(),
        variables: ["product", "question", "tone"]
            .iter()
            .map(|name| VariableSpec {
                name: (*name).into(),
                required: *name != "tone",
                max_chars: 2000,
            })
            .collect(),
        system: format!(
            "{system} You support {{{{ product }}}}.{{% if tone is defined %}} Tone: {{{{ tone }}}}.{{% endif %}}"
        ),
        messages: vec![MessagePart {
            role: Role::User,
            text: "Answer the question below.\n{{ question }}".into(),
        }],
    }
}

pub fn tenant(id: &str, templates: &[&str], quotas: Quotas) -> TenantSpec {
    TenantSpec {
        tenant_id: id.into(),
        templates: templates.iter().map(|t| (*t).to_owned()).collect(),
        payload_logging: PayloadLogging {
            enabled: false,
            retention_days: 30,
        },
        quotas,
        export: None,
        preview: false,
        context: None,
    }
}

/// The local stack's resources for one test, and the stores over them.
pub struct World {
    pub config: SdkConfig,
    pub resources: Resources,
    /// This test's model id on the stand-in.
    pub model_id: String,
}

impl World {
    pub async fn new() -> Self {
        let (config, resources) = promptseal_devstack::fresh_resources().await;
        Self {
            config,
            resources,
            model_id: promptseal_devstack::unique_name("standin.e2e"),
        }
    }

    pub fn templates(&self) -> TemplateStore {
        SealedStores::new(&self.config, aws_sdk_dynamodb::Client::new(&self.config))
            .templates(self.resources.sealed_tables())
    }

    pub fn tenants(&self) -> TenantRegistry {
        TenantRegistry::new(
            aws_sdk_dynamodb::Client::new(&self.config),
            self.resources.table("TenantsTable"),
        )
    }

    pub fn payload_records(&self) -> PayloadStore {
        PayloadStore::new(
            aws_sdk_dynamodb::Client::new(&self.config),
            self.resources.table("PayloadRecordsTable"),
        )
    }

    /// Every payload record stored for `tenant`.
    pub async fn records_of(&self, tenant: &str) -> Vec<promptseal::records::PayloadRecord> {
        self.payload_records()
            .stored_between(tenant, "0", "9")
            .all()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.record)
            .collect()
    }

    pub fn usage(&self) -> UsageLedger {
        UsageLedger::new(
            aws_sdk_dynamodb::Client::new(&self.config),
            self.resources.table("UsageTable"),
        )
    }

    /// Seals `support-reply` (with `system` as its ISV text) and registers acme and globex, both
    /// entitled to it.
    pub async fn seed(&self, system: &str) {
        self.templates()
            .put(
                template("support-reply", &self.model_id, system),
                "e2e",
                true,
                &Renderer::default(),
            )
            .await
            .unwrap();
        for id in ["acme", "globex"] {
            self.tenants()
                .put(&tenant(id, &["support-reply"], Quotas::default()))
                .await
                .unwrap();
        }
    }

    /// Seals `support-reply` with `system` as its ISV text and `policy` as its leak-guard policy.
    pub async fn seal_with_policy(&self, system: &str, policy: LeakPolicy) {
        let mut template = template("support-reply", &self.model_id, system);
        template.leak_guard = LeakSettings {
            policy,
            ..LeakSettings::default()
        };
        self.templates()
            .put(template, "e2e", true, &Renderer::default())
            .await
            .unwrap();
    }

    pub fn standin(&self) -> Control {
        Control::new(promptseal_devstack::endpoint_from_env(
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        ))
    }

    pub fn set_model(&self, behaviour: Behaviour) {
        self.standin()
            .set_behaviour(&self.model_id, &behaviour)
            .unwrap();
    }

    /// The Converse requests this test's model received.
    pub fn model_requests(&self) -> Vec<Value> {
        self.standin().received(&self.model_id).unwrap()
    }

    /// Starts the function against this world, with extra environment variables and the
    /// logging check uncached.
    pub fn function(&self, extra_env: &[(&str, &str)]) -> Function {
        Function::start(
            &self.resources,
            [("LOGGING_CHECK_TTL_SECONDS", "0")].iter().chain(extra_env),
        )
    }

    /// Starts invoke-stream against this world, with extra environment variables and the
    /// logging check uncached.
    pub fn stream_function(&self, extra_env: &[(&str, &str)]) -> Function {
        Function::start_stream(
            &self.resources,
            [("LOGGING_CHECK_TTL_SECONDS", "0")].iter().chain(extra_env),
        )
    }

    /// Starts the function as deployed: only the variables template.yaml sets, and `extra_env`.
    pub fn function_at_defaults(&self, extra_env: &[(&str, &str)]) -> Function {
        Function::start(&self.resources, extra_env.iter())
    }
}

/// The invoke binary (or invoke-stream) running behind cargo-lambda's runtime emulator, in
/// tenant-hosted mode unless told otherwise. Dropping it stops both.
pub struct Function(EmulatedFunction);

/// A streamed answer as the client of `/v1/invoke/stream` reads it: the response's status and
/// content type, then its Server-Sent Events, each with when it arrived.
pub struct StreamReply {
    pub status: u16,
    pub content_type: String,
    /// The body when it is not a stream of events (an HTTP error).
    pub body: Value,
    pub events: Vec<Event>,
}

pub struct Event {
    pub name: String,
    pub data: Value,
    /// Since the request was sent.
    pub at: std::time::Duration,
}

impl StreamReply {
    /// The text of every `delta` event, joined.
    pub fn text(&self) -> String {
        self.events
            .iter()
            .filter(|e| e.name == "delta")
            .map(|e| e.data["text"].as_str().unwrap())
            .collect()
    }

    /// The last event.
    pub fn last(&self) -> &Event {
        self.events.last().expect("at least one event")
    }

    pub fn code(&self) -> &str {
        let error = match self.events.last() {
            Some(e) if e.name == "error" => &e.data,
            _ => &self.body,
        };
        error["error"]["code"].as_str().unwrap_or("")
    }
}

impl Function {
    fn start<'a>(
        resources: &Resources,
        extra_env: impl Iterator<Item = &'a (&'a str, &'a str)>,
    ) -> Self {
        Self::start_binary(
            Path::new(env!("CARGO_BIN_EXE_invoke")),
            resources,
            extra_env,
        )
    }

    /// invoke-stream, the streamed endpoint's function.
    pub fn start_stream<'a>(
        resources: &Resources,
        extra_env: impl Iterator<Item = &'a (&'a str, &'a str)>,
    ) -> Self {
        Self::start_binary(
            Path::new(env!("CARGO_BIN_EXE_invoke-stream")),
            resources,
            extra_env,
        )
    }

    fn start_binary<'a>(
        binary: &Path,
        resources: &Resources,
        extra_env: impl Iterator<Item = &'a (&'a str, &'a str)>,
    ) -> Self {
        let log_dir = std::env::temp_dir().join(promptseal_devstack::unique_name("invoke-e2e"));
        let spec = FunctionSpec {
            venv: &root().join(".venv"),
            workspace: &root(),
            binary,
            log_dir: &log_dir,
        };
        let env = [("DEPLOYMENT_MODE", "tenant-hosted")]
            .iter()
            .chain(extra_env)
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Self(EmulatedFunction::start(&spec, resources.env().into_iter().chain(env)).unwrap())
    }

    /// Delivers one event and returns the function's API Gateway response.
    pub fn invoke(&self, event: &Value) -> Reply {
        let raw = self.0.invoke(event).unwrap();
        let body = raw["body"]
            .as_str()
            .map(|b| serde_json::from_str(b).unwrap_or(Value::String(b.to_owned())))
            .unwrap_or(Value::Null);
        Reply {
            status: raw["statusCode"].as_u64().unwrap_or(0) as u16,
            body,
            raw,
        }
    }

    /// Delivers one event to the streaming function and reads its events as they arrive.
    pub fn invoke_stream(&self, event: &Value) -> StreamReply {
        let streamed = self.0.invoke_streaming(event).unwrap();
        let mut events = Vec::new();
        let mut offset = 0;
        for block in streamed.body.split_inclusive("\n\n") {
            offset += block.len();
            let mut name = String::new();
            let mut data = Value::Null;
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap();
                }
            }
            if !name.is_empty() {
                let at = streamed.arrived(offset).unwrap();
                events.push(Event { name, data, at });
            }
        }
        StreamReply {
            status: streamed.status,
            content_type: streamed.content_type,
            body: serde_json::from_str(&streamed.body).unwrap_or(Value::Null),
            events,
        }
    }

    /// Everything the function process has written to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.0.logs()
    }
}
