//! A function binary started as Lambda starts it, with a loopback listener standing in for the
//! runtime API: how long it takes to ask for its first event, and whether it gets there at all.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Starts `binary` with only the runtime's variables and `env`, and waits for its first request
/// to the runtime API. Returns the time from spawn to that request and the peak RSS (KiB) then,
/// if it is the poll for an event (`GET .../invocation/next`); otherwise (the binary exited,
/// stalled for 10 s, or asked for something else) an error with what it wrote to stderr.
pub fn first_poll(binary: &Path, env: &[(String, String)]) -> Result<(Duration, u64)> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let port = listener.local_addr()?.port();
    let runtime = [
        ("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}")),
        ("AWS_LAMBDA_FUNCTION_NAME", "first-poll".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
    ];
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .envs(runtime)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    // Accept blocks (no busy loop stealing a core from the process measured); a watchdog
    // unblocks it by connecting itself if the binary dies or stalls.
    let pid = child.id();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && process_alive(pid) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::net::TcpStream::connect(("127.0.0.1", port));
    });
    let result = (|| {
        let (stream, _) = listener.accept()?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        let elapsed = started.elapsed();
        if !line.starts_with("GET /2018-06-01/runtime/invocation/next") {
            bail!("no poll for an event (first request: {line:?})");
        }
        Ok((elapsed, peak_rss_kib(pid)?))
    })();
    let _ = child.kill();
    let _ = child.wait();
    result.with_context(|| {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        format!(
            "{} before its first poll; stderr: {stderr}",
            binary.display()
        )
    })
}

/// Running, not a zombie.
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit(')')
                .next()
                .map(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

pub(crate) fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc status")
}
