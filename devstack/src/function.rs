//! A Lambda function binary running behind cargo-lambda's runtime emulator
//! (`cargo lambda watch --only-lambda-apis`): the emulator serves the Lambda runtime and invoke
//! APIs on loopback, the prebuilt binary polls it as it would in Lambda.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The function and its emulator; dropping it stops both.
pub struct EmulatedFunction {
    emulator: Child,
    function: Child,
    port: u16,
    log: PathBuf,
}

/// A streamed response as its client read it.
pub struct Streamed {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    /// How much of the body had arrived, and when (since the request was sent), read by read.
    pub arrivals: Vec<(usize, Duration)>,
}

impl Streamed {
    /// When the body's first `len` bytes had all arrived.
    pub fn arrived(&self, len: usize) -> Option<Duration> {
        self.arrivals
            .iter()
            .find(|(end, _)| *end >= len)
            .map(|(_, at)| *at)
    }
}

/// What to run, and where.
pub struct FunctionSpec<'a> {
    /// The venv holding `cargo-lambda`.
    pub venv: &'a Path,
    /// The workspace root (cargo-lambda reads its metadata).
    pub workspace: &'a Path,
    /// The built function binary.
    pub binary: &'a Path,
    /// Directory for the emulator's and the function's output.
    pub log_dir: &'a Path,
}

fn append(path: &Path) -> Result<File> {
    Ok(File::options().create(true).append(true).open(path)?)
}

impl EmulatedFunction {
    /// Starts the emulator on a free loopback port, then the function with `env` added to the
    /// runtime's variables.
    pub fn start(
        spec: &FunctionSpec<'_>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let cargo_lambda = spec.venv.join("bin/cargo-lambda");
        if !cargo_lambda.exists() {
            bail!("cargo-lambda is not in the venv: run `cargo xtask venv`");
        }
        std::fs::create_dir_all(spec.log_dir)?;
        let emulator_log = spec.log_dir.join("emulator.log");
        let log = spec.log_dir.join("function.log");
        let port = TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
        let mut emulator = Command::new(&cargo_lambda)
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .current_dir(spec.workspace)
            .stdin(Stdio::null())
            .stdout(append(&emulator_log)?)
            .stderr(append(&emulator_log)?)
            .spawn()
            .context("starting cargo lambda watch")?;
        let function = wait_for_port(port, &emulator_log).and_then(|()| {
            Command::new(spec.binary)
                .env(
                    "AWS_LAMBDA_RUNTIME_API",
                    format!("http://127.0.0.1:{port}/.rt"),
                )
                .env("AWS_LAMBDA_FUNCTION_NAME", "_")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .envs(env)
                .stdin(Stdio::null())
                .stdout(append(&log)?)
                .stderr(append(&log)?)
                .spawn()
                .with_context(|| format!("starting {}", spec.binary.display()))
        });
        match function {
            Ok(function) => Ok(Self {
                emulator,
                function,
                port,
                log,
            }),
            Err(e) => {
                stop(&mut emulator);
                Err(e)
            }
        }
    }

    /// Delivers one event and returns the function's response, or the error it reported
    /// (`{"errorType", "errorMessage"}`).
    pub fn invoke(&self, event: &Value) -> Result<Value> {
        let url = format!(
            "http://127.0.0.1:{}/2015-03-31/functions/_/invocations",
            self.port
        );
        let text = ureq::post(&url)
            .header("content-type", "application/json")
            .config()
            .http_status_as_error(false)
            .build()
            .send(&event.to_string())?
            .body_mut()
            .read_to_string()?;
        Ok(serde_json::from_str(&text)?)
    }

    /// Delivers one event to a function that streams its response, and reads the response as
    /// it arrives. The emulator passes a streamed response through as API Gateway does: the
    /// prelude's status and headers as the HTTP response's, then the body, chunk by chunk.
    pub fn invoke_streaming(&self, event: &Value) -> Result<Streamed> {
        self.invoke_streaming_with(event, |_| {})
    }

    /// As `invoke_streaming`, handing each piece of the body to `on_piece` as it arrives.
    pub fn invoke_streaming_with(
        &self,
        event: &Value,
        mut on_piece: impl FnMut(&[u8]),
    ) -> Result<Streamed> {
        use std::io::Read;
        let url = format!(
            "http://127.0.0.1:{}/2015-03-31/functions/_/invocations",
            self.port
        );
        let sent = Instant::now();
        let mut response = ureq::post(&url)
            .header("content-type", "application/json")
            .config()
            .http_status_as_error(false)
            .build()
            .send(&event.to_string())?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let mut reader = response.body_mut().as_reader();
        let mut body = Vec::new();
        let mut arrivals = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            on_piece(&buf[..n]);
            body.extend_from_slice(&buf[..n]);
            arrivals.push((body.len(), sent.elapsed()));
        }
        Ok(Streamed {
            status,
            content_type,
            body: String::from_utf8(body)?,
            arrivals,
        })
    }

    /// The emulator's Lambda API (`Invoke` with the function name `_`), for a client that calls
    /// this function through the AWS SDK (`AWS_ENDPOINT_URL_LAMBDA`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The function process's peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        crate::runtime::peak_rss_kib(self.function.id())
    }

    /// Everything the function has written to stdout and stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn wait_for_port(port: u16, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("the runtime emulator did not start; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for EmulatedFunction {
    fn drop(&mut self) {
        stop(&mut self.function);
        stop(&mut self.emulator);
    }
}
