//! The local stack: the AWS API emulator (moto's server mode, from the project venv) and the
//! Bedrock runtime stand-in on loopback, and the provisioning of template.yaml's tables and keys in
//! the emulator, named as a CloudFormation stack of a given name would name them. And the Lambda
//! functions themselves behind cargo-lambda's runtime emulator.

mod function;
mod runtime;

pub use function::{EmulatedFunction, FunctionSpec};
pub use runtime::first_poll;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use promptseal::store::sealed::SealedTables;
use serde_yaml_ng::Value;

pub const REGION: &str = "us-east-1";
/// Emulator credentials: any value works, but the SDK needs some.
const ACCESS_KEY: &str = "test";
/// The AWS account the emulator acts as for the stack's credentials (moto's default).
pub const ACCOUNT_ID: &str = "123456789012";
const SECRET_KEY: &str = "test";

/// The processes of a running local stack. Dropping it stops them.
pub struct LocalStack {
    children: Vec<Child>,
    pub aws_endpoint: String,
    pub bedrock_endpoint: String,
}

/// Where the stack's programs are and where their logs go.
pub struct StackPaths {
    /// The venv holding moto.
    pub venv: PathBuf,
    /// `tools/aws_emulator.py`: moto's server app, one request at a time.
    pub emulator: PathBuf,
    /// The built `bedrock-standin` binary.
    pub standin: PathBuf,
    /// Directory for the processes' logs.
    pub logs: PathBuf,
}

impl LocalStack {
    /// Starts the emulator and the stand-in on the given ports (0: any free port) and waits until
    /// both accept connections.
    pub fn start(paths: &StackPaths, aws_port: u16, bedrock_port: u16) -> Result<Self> {
        std::fs::create_dir_all(&paths.logs)?;
        let aws_port = pick_port(aws_port)?;
        let bedrock_port = pick_port(bedrock_port)?;
        let mut stack = Self {
            children: Vec::new(),
            aws_endpoint: format!("http://127.0.0.1:{aws_port}"),
            bedrock_endpoint: format!("http://127.0.0.1:{bedrock_port}"),
        };
        let python = paths.venv.join("bin").join("python");
        stack.children.push(
            Command::new(&python)
                .arg(&paths.emulator)
                .args(["--host", "127.0.0.1", "--port", &aws_port.to_string()])
                .stdin(Stdio::null())
                .stdout(log_file(&paths.logs, "moto.log")?)
                .stderr(log_file(&paths.logs, "moto.log")?)
                .spawn()
                .with_context(|| format!("starting {}", paths.emulator.display()))?,
        );
        stack.children.push(
            Command::new(&paths.standin)
                .args(["--port", &bedrock_port.to_string()])
                .stdin(Stdio::null())
                .stdout(log_file(&paths.logs, "bedrock-standin.log")?)
                .stderr(log_file(&paths.logs, "bedrock-standin.log")?)
                .spawn()
                .with_context(|| format!("starting {}", paths.standin.display()))?,
        );
        stack.wait_ready(&[aws_port, bedrock_port], Duration::from_secs(60))?;
        Ok(stack)
    }

    fn wait_ready(&mut self, ports: &[u16], timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for &port in ports {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                for child in &mut self.children {
                    if let Some(status) = child.try_wait()? {
                        bail!(
                            "a local stack process exited during start-up ({status}); see .local/logs"
                        );
                    }
                }
                if Instant::now() > deadline {
                    bail!("port {port} did not open within {timeout:?}; see .local/logs");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// The environment that points AWS SDKs (and so the functions and the CLI) at this stack.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.aws_endpoint.as_str()),
            (
                "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
                self.bedrock_endpoint.as_str(),
            ),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// An SDK configuration for the emulator.
    pub async fn sdk_config(&self) -> SdkConfig {
        emulator_config(&self.aws_endpoint).await
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An SDK configuration for an emulator at `endpoint`, with its dummy credentials.
pub async fn emulator_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            None,
            None,
            "promptseal-devstack",
        ))
        .load()
        .await
}

fn log_file(dir: &Path, name: &str) -> Result<File> {
    Ok(File::options()
        .create(true)
        .append(true)
        .open(dir.join(name))?)
}

fn pick_port(port: u16) -> Result<u16> {
    if port != 0 {
        return Ok(port);
    }
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// What provisioning created, by template.yaml logical id.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub stack_name: String,
    /// Table logical id → table name.
    pub tables: BTreeMap<String, String>,
    /// Key logical id → alias name (`alias/...`), for keys that template.yaml gives an alias.
    pub key_aliases: BTreeMap<String, String>,
}

impl Resources {
    pub fn table(&self, logical_id: &str) -> &str {
        self.tables
            .get(logical_id)
            .unwrap_or_else(|| panic!("template.yaml declares no table {logical_id}"))
    }

    pub fn key_alias(&self, logical_id: &str) -> &str {
        self.key_aliases
            .get(logical_id)
            .unwrap_or_else(|| panic!("template.yaml declares no alias for key {logical_id}"))
    }

    /// Where the sealed stores live in this stack.
    pub fn sealed_tables(&self) -> SealedTables {
        SealedTables {
            templates_table: self.table("TemplatesTable").to_owned(),
            template_key_id: self.key_alias("TemplateKey").to_owned(),
            fingerprints_table: self.table("FingerprintsTable").to_owned(),
            fingerprint_key_id: self.key_alias("FingerprintKey").to_owned(),
        }
    }

    /// The configuration variables the functions and the CLI read, named after the logical ids:
    /// `TemplatesTable` → `TEMPLATES_TABLE`, `TemplateKey` → `TEMPLATE_KEY_ID`.
    pub fn env(&self) -> Vec<(String, String)> {
        let tables = self
            .tables
            .iter()
            .map(|(id, name)| (screaming_snake(id), name.clone()));
        let keys = self
            .key_aliases
            .iter()
            .map(|(id, alias)| (format!("{}_ID", screaming_snake(id)), alias.clone()));
        tables.chain(keys).collect()
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Creates template.yaml's DynamoDB tables and KMS keys (with their aliases) in the emulator, named
/// for a stack called `stack_name`.
pub async fn provision(config: &SdkConfig, template: &Path, stack_name: &str) -> Result<Resources> {
    let text = std::fs::read_to_string(template)
        .with_context(|| format!("reading {}", template.display()))?;
    let doc: Value = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("parsing {}", template.display()))?;
    let resources = doc
        .get("Resources")
        .and_then(Value::as_mapping)
        .context("template has no Resources")?;
    let ddb = aws_sdk_dynamodb::Client::new(config);
    let kms = aws_sdk_kms::Client::new(config);
    let mut out = Resources {
        stack_name: stack_name.to_owned(),
        ..Resources::default()
    };
    let mut key_ids = BTreeMap::new();

    let of_type = |wanted: &'static str| {
        resources
            .iter()
            .filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(wanted))
            .map(|(id, r)| (id.as_str().unwrap_or_default().to_owned(), &r["Properties"]))
    };

    for (id, props) in of_type("AWS::DynamoDB::Table") {
        let name = substitute(&props["TableName"], stack_name)
            .with_context(|| format!("{id}: TableName"))?;
        create_table(&ddb, &name, props)
            .await
            .with_context(|| format!("creating table {name}"))?;
        out.tables.insert(id, name);
    }
    for (id, props) in of_type("AWS::KMS::Key") {
        let description = props["Description"].as_str().unwrap_or(&id).to_owned();
        let key = kms
            .create_key()
            .description(description)
            .send()
            .await
            .with_context(|| format!("creating key {id}"))?;
        let key_id = key
            .key_metadata()
            .map(|m| m.key_id().to_owned())
            .context("CreateKey returned no key id")?;
        key_ids.insert(id, key_id);
    }
    for (id, props) in of_type("AWS::KMS::Alias") {
        let alias = substitute(&props["AliasName"], stack_name)
            .with_context(|| format!("{id}: AliasName"))?;
        let target =
            reference(&props["TargetKeyId"]).with_context(|| format!("{id}: TargetKeyId"))?;
        let key_id = key_ids
            .get(target)
            .with_context(|| format!("{id} targets {target}, which is not a key"))?;
        kms.create_alias()
            .alias_name(&alias)
            .target_key_id(key_id)
            .send()
            .await
            .with_context(|| format!("creating alias {alias}"))?;
        out.key_aliases.insert(target.to_owned(), alias);
    }
    Ok(out)
}

async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str, props: &Value) -> Result<()> {
    let mut req = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for def in props["AttributeDefinitions"]
        .as_sequence()
        .context("AttributeDefinitions")?
    {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(field(def, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(field(def, "AttributeType")?))
                .build()?,
        );
    }
    req = req.set_key_schema(Some(key_schema(&props["KeySchema"])?));
    for index in props
        .get("LocalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let lsi = LocalSecondaryIndex::builder()
            .index_name(field(index, "IndexName")?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::from(field(
                        &index["Projection"],
                        "ProjectionType",
                    )?))
                    .build(),
            )
            .set_key_schema(Some(key_schema(&index["KeySchema"])?));
        req = req.local_secondary_indexes(lsi.build()?);
    }
    req.send().await?;
    if let Some(ttl) = props.get("TimeToLiveSpecification") {
        ddb.update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(field(ttl, "AttributeName")?)
                    .enabled(ttl["Enabled"].as_bool().unwrap_or(false))
                    .build()?,
            )
            .send()
            .await?;
    }
    Ok(())
}

fn key_schema(v: &Value) -> Result<Vec<KeySchemaElement>> {
    v.as_sequence()
        .context("KeySchema")?
        .iter()
        .map(|key| {
            Ok(KeySchemaElement::builder()
                .attribute_name(field(key, "AttributeName")?)
                .key_type(KeyType::from(field(key, "KeyType")?))
                .build()?)
        })
        .collect()
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a str> {
    v[name].as_str().with_context(|| format!("missing {name}"))
}

/// `!Sub "...${AWS::StackName}..."` (or a plain string) with the stack name filled in.
fn substitute(v: &Value, stack_name: &str) -> Result<String> {
    let raw = match v {
        Value::String(s) => s.as_str(),
        Value::Tagged(t) if t.tag == "Sub" => t.value.as_str().context("!Sub takes a string")?,
        other => bail!("unsupported value {other:?}"),
    };
    let out = raw.replace("${AWS::StackName}", stack_name);
    if out.contains("${") {
        bail!("only ${{AWS::StackName}} can be substituted locally: {raw}");
    }
    Ok(out)
}

/// The logical id named by `!Ref X`.
fn reference(v: &Value) -> Result<&str> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str().context("!Ref takes a logical id"),
        other => bail!("expected !Ref, found {other:?}"),
    }
}

/// The environment the function `logical_id` would start with: the variables template.yaml gives
/// it, each value resolved as a deployment with the parameters' defaults would resolve it
/// (`parameters` overrides some; `!Ref` of a parameter is its value, `!Ref` of a resource and
/// `!GetAtt` of one are what `resource` says they are, and `!If` follows the condition), and the
/// region and (dummy) credentials Lambda adds, with no instance metadata to fall back on.
pub fn function_environment(
    template: &Path,
    logical_id: &str,
    parameters: &[(&str, &str)],
    resource: impl Fn(&str) -> String,
) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(template)
        .with_context(|| format!("reading {}", template.display()))?;
    let doc: Value = serde_yaml_ng::from_str(&text)?;
    let parameter = |name: &str| -> Option<String> {
        parameters
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
            .or_else(|| match &doc["Parameters"][name]["Default"] {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    };
    let variables = doc["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .with_context(|| format!("template.yaml gives {logical_id} no environment"))?;
    let mut env = variables
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().context("a variable name")?.to_owned();
            let value = resolve(&doc, value, &parameter, &resource)
                .with_context(|| format!("{logical_id}: {name}"))?;
            Ok((name, value))
        })
        .collect::<Result<Vec<_>>>()?;
    env.extend(
        [
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    Ok(env)
}

/// One environment value of template.yaml, resolved (see [`function_environment`]).
fn resolve(
    doc: &Value,
    value: &Value,
    parameter: &dyn Fn(&str) -> Option<String>,
    resource: &dyn Fn(&str) -> String,
) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Tagged(t) if t.tag == "Ref" => {
            let id = reference(value)?;
            Ok(parameter(id).unwrap_or_else(|| resource(id)))
        }
        Value::Tagged(t) if t.tag == "GetAtt" => {
            let target = t
                .value
                .as_str()
                .context("!GetAtt takes Resource.Attribute")?;
            Ok(resource(target.split('.').next().unwrap_or(target)))
        }
        Value::Tagged(t) if t.tag == "If" => {
            let Some([condition, then, otherwise]) = t.value.as_sequence().map(Vec::as_slice)
            else {
                bail!("!If takes [condition, value, value]");
            };
            let condition = condition.as_str().context("!If names a condition")?;
            let chosen = if holds(doc, &doc["Conditions"][condition], parameter)? {
                then
            } else {
                otherwise
            };
            resolve(doc, chosen, parameter, resource)
        }
        other => bail!("unsupported value {other:?}"),
    }
}

/// Whether a template condition holds for the parameters (`!Equals`, `!Not`, `!And`, `!Or`,
/// `!Condition`, over `!Ref` of parameters and literals).
fn holds(
    doc: &Value,
    condition: &Value,
    parameter: &dyn Fn(&str) -> Option<String>,
) -> Result<bool> {
    let Value::Tagged(t) = condition else {
        bail!("unsupported condition {condition:?}");
    };
    let all = || t.value.as_sequence().context("a condition list");
    let value = |v: &Value| -> Result<String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Tagged(r) if r.tag == "Ref" => {
                let id = reference(v)?;
                parameter(id).with_context(|| format!("{id} is not a parameter"))
            }
            other => bail!("unsupported operand {other:?}"),
        }
    };
    match t.tag.to_string().trim_start_matches('!') {
        "Equals" => match all()?.as_slice() {
            [a, b] => Ok(value(a)? == value(b)?),
            _ => bail!("!Equals takes two values"),
        },
        "Not" => match all()?.as_slice() {
            [c] => Ok(!holds(doc, c, parameter)?),
            _ => bail!("!Not takes one condition"),
        },
        "And" => all()?
            .iter()
            .try_fold(true, |acc, c| Ok(acc && holds(doc, c, parameter)?)),
        "Or" => all()?
            .iter()
            .try_fold(false, |acc, c| Ok(acc || holds(doc, c, parameter)?)),
        "Condition" => {
            let name = t.value.as_str().context("!Condition names a condition")?;
            holds(doc, &doc["Conditions"][name], parameter)
        }
        other => bail!("unsupported condition !{other}"),
    }
}

/// The value of an endpoint variable that `cargo xtask test` sets, with advice when it is missing.
pub fn endpoint_from_env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: integration tests run against the local stack. \
             Use `cargo xtask test`, or `cargo xtask up` and `source .local/stack.env` first."
        )
    })
}

/// A name no other test, in this process or another, uses.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// For tests: the running emulator (from `AWS_ENDPOINT_URL`) and template.yaml's resources,
/// freshly created for a stack name of their own.
pub async fn fresh_resources() -> (SdkConfig, Resources) {
    let config = emulator_config(&endpoint_from_env("AWS_ENDPOINT_URL")).await;
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let resources = provision(&config, &template, &unique_name("t"))
        .await
        .expect("provisioning template.yaml's resources in the emulator");
    (config, resources)
}

/// A CloudWatch Logs subscription event delivering `messages` from Bedrock's invocation log
/// group, as Lambda receives it: the payload (aws_lambda_events' `LogData`) gzipped and base64
/// encoded under `awslogs.data`.
pub fn subscription_event(messages: &[String]) -> serde_json::Value {
    use aws_lambda_events::event::cloudwatch_logs::{LogData, LogEntry};
    use base64::Engine;
    use std::io::Write;
    let mut data = LogData::default();
    data.message_type = "DATA_MESSAGE".into();
    data.owner = ACCOUNT_ID.into();
    data.log_group = "/aws/bedrock/modelinvocations".into();
    data.log_stream = "aws/bedrock/modelinvocations".into();
    data.subscription_filters = vec!["promptseal-redact-log".into()];
    data.log_events = messages
        .iter()
        .enumerate()
        .map(|(i, message)| {
            let mut entry = LogEntry::default();
            entry.id = i.to_string();
            entry.message = message.clone();
            entry
        })
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&serde_json::to_vec(&data).expect("log data serialises"))
        .expect("writing to memory");
    let gz = gz.finish().expect("writing to memory");
    let encoded = base64::engine::general_purpose::STANDARD.encode(gz);
    serde_json::json!({ "awslogs": { "data": encoded } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_become_configuration_variables() {
        assert_eq!(screaming_snake("TemplatesTable"), "TEMPLATES_TABLE");
        let r = Resources {
            stack_name: "s".into(),
            tables: [("UsageTable".to_owned(), "s-usage".to_owned())].into(),
            key_aliases: [("TemplateKey".to_owned(), "alias/s-templates".to_owned())].into(),
        };
        assert_eq!(
            r.env(),
            vec![
                ("USAGE_TABLE".to_owned(), "s-usage".to_owned()),
                ("TEMPLATE_KEY_ID".to_owned(), "alias/s-templates".to_owned()),
            ]
        );
    }

    #[test]
    fn only_the_stack_name_is_substituted() {
        let sub: Value = serde_yaml_ng::from_str("!Sub \"${AWS::StackName}-t\"").unwrap();
        assert_eq!(substitute(&sub, "demo").unwrap(), "demo-t");
        let other: Value = serde_yaml_ng::from_str("!Sub \"${AWS::Region}-t\"").unwrap();
        assert!(substitute(&other, "demo").is_err());
    }
}
