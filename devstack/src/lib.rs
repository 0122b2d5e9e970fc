//! The local stack: the AWS API emulator (moto's server mode, from the project venv) and the
//! Bedrock runtime stand-in on loopback, the Lambda functions behind cargo-lambda's runtime
//! emulator, the environment template.yaml gives each function, and the workspace chores around
//! them (the project venv, cargo). With the `sdk` feature, also the provisioning of template.yaml's
//! tables and keys in the emulator and the events the functions' tests send: those need the AWS
//! SDK, which `cargo xtask` itself does without.

mod function;
mod runtime;
mod workspace;

#[cfg(feature = "sdk")]
mod context;
#[cfg(feature = "sdk")]
mod events;
#[cfg(feature = "sdk")]
mod lambda;
#[cfg(feature = "sdk")]
mod provision;

#[cfg(feature = "sdk")]
pub use context::{ContextFixture, FIXTURE_DIMENSIONS, FIXTURE_MODEL};
#[cfg(feature = "sdk")]
pub use events::subscription_event;
pub use function::{EmulatedFunction, FunctionSpec, Streamed};
#[cfg(feature = "sdk")]
pub use lambda::{LambdaEndpoint, Route};
#[cfg(feature = "sdk")]
pub use provision::{Resources, emulator_config, fresh_resources, provision};
pub use runtime::first_poll;
pub use workspace::{
    cargo, ensure_venv, path_with_venv, python_venv, run, target_dir, workspace_root,
};

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_yaml_ng::Value;

pub const REGION: &str = "us-east-1";
/// The ports `cargo xtask up` listens on, so that a shell (and events/local-stack.json) can be
/// pointed at it once.
pub const UP_AWS_PORT: u16 = 4566;
pub const UP_BEDROCK_PORT: u16 = 4599;
/// The stack name `cargo xtask up` and the demo name local resources for: the README's defaults,
/// and events/local-stack.json's.
pub const STACK_NAME: &str = "promptseal";
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
pub(crate) struct StackPaths {
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
    pub(crate) fn start(paths: &StackPaths, aws_port: u16, bedrock_port: u16) -> Result<Self> {
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
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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
    let mut env = Vec::new();
    for (name, value) in variables {
        let name = name.as_str().context("a variable name")?.to_owned();
        let value = resolve(&doc, value, &parameter, &resource)
            .with_context(|| format!("{logical_id}: {name}"))?;
        if let Some(value) = value {
            env.push((name, value));
        }
    }
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

/// One environment value of template.yaml, resolved (see [`function_environment`]); `None` for
/// `!Ref AWS::NoValue`, which removes the variable.
fn resolve(
    doc: &Value,
    value: &Value,
    parameter: &dyn Fn(&str) -> Option<String>,
    resource: &dyn Fn(&str) -> String,
) -> Result<Option<String>> {
    match value {
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Tagged(t) if t.tag == "Ref" => match reference(value)? {
            "AWS::NoValue" => Ok(None),
            id => Ok(Some(parameter(id).unwrap_or_else(|| resource(id)))),
        },
        Value::Tagged(t) if t.tag == "GetAtt" => {
            let target = t
                .value
                .as_str()
                .context("!GetAtt takes Resource.Attribute")?;
            Ok(Some(resource(target.split('.').next().unwrap_or(target))))
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
