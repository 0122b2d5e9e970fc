//! Benchmarks whose figures go into BENCHMARKS.md, each run side by side with the Python peers
//! (in `$PROMPTSEAL_PEERS`, by default ../shared/peers beside the repository; copied into
//! .local/peers, where they get their venv and fixtures). Without the peers, what can run without
//! them runs and the rest is skipped with a message:
//!
//! - `cold-start`: the release invoke binary from process spawn to its first poll of the Lambda
//!   runtime API for an event (`GET .../invocation/next`), and its peak RSS at that moment, on a
//!   loopback listener standing in for the runtime API;
//! - `warm`: invoke's in-process path for the peer's inputs (criterion, functions/invoke/benches);
//! - `leakscan`: the leak scanner over the peer's 1,000 replies (criterion, shared/benches);
//! - `redact`: redact-log end to end over the peer's 40,000 invocation-log records (criterion,
//!   functions/redact-log/benches), then the peer's keyed and fast pipelines;
//! - `export`: export-logs' serialise + compress + digest of 10,000 records (criterion; the peers
//!   have no exporter to compare with);
//! - `search`: the in-memory vector search over 50,000 vectors of 1,024 dimensions (criterion,
//!   shared/benches), then numpy's exact search over the same vectors (tools/bench_vector_search.py,
//!   numpy from a venv of its own, .local/bench-venv);
//! - `conversation`: the input tokens billed at full price over a 10-turn conversation on the
//!   peer's 8 KB template, with and without prompt caching (devstack's `bench-conversation`);
//! - `retrieval`: a collection of 50,000 chunks of 1,024 dimensions ingested, loaded cold and
//!   served by retrieve-context's release binary against a local stack of its own
//!   (devstack's `bench-retrieval`), with the Python peer's load of the same sealed segments
//!   (tools/bench_cold_load.py) in the same run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use promptseal_devstack::{cargo, python_venv, run, target_dir};

pub fn run_bench(root: &Path, args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("cold-start") => {
            let runs = args.get(1).map(|r| r.parse()).transpose()?.unwrap_or(30);
            cold_start(root, runs)
        }
        Some("warm") => warm(root),
        Some("leakscan") => leakscan(root),
        Some("redact") => redact(root),
        Some("search") => search(root),
        Some("retrieval") => retrieval(root),
        Some("conversation") => conversation(root),
        Some("export") => run(cargo().current_dir(root).args([
            "bench",
            "--package",
            "export-logs",
            "--bench",
            "export",
        ])),
        _ => {
            bail!(
                "usage: cargo xtask bench cold-start [RUNS] | warm | leakscan | redact | export \
                 | search | retrieval | conversation"
            )
        }
    }
}

fn cold_start(root: &Path, runs: usize) -> Result<()> {
    run(cargo()
        .current_dir(root)
        .args(["build", "--release", "--package", "invoke"]))?;
    let target = target_dir(root);
    let binary = target.join("release/invoke");
    let size = std::fs::metadata(&binary)?.len();
    // One unmeasured start so the binary is in the page cache, as the peer's script does.
    cold_once(root, &binary)?;
    let mut times = Vec::with_capacity(runs);
    let mut rss = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (t, kib) = cold_once(root, &binary)?;
        times.push(t.as_secs_f64() * 1000.0);
        rss.push(kib as f64 / 1024.0);
    }
    let (t, r) = (stats(&mut times), stats(&mut rss));
    println!("invoke release binary: {size} bytes, {runs} cold starts");
    println!(
        "spawn to first /next poll: median {:.2} ms (min {:.2}, max {:.2})",
        t.0, t.1, t.2
    );
    println!(
        "peak RSS (VmHWM) then:    median {:.2} MiB (min {:.2}, max {:.2})",
        r.0, r.1, r.2
    );
    peer_cold_start(root)
}

/// The Python peer's own cold-start measurement, right after ours, so the two are compared on the
/// same machine at the same time.
fn peer_cold_start(root: &Path) -> Result<()> {
    let Some(peers) = peers(root, "the peer's cold start")? else {
        return Ok(());
    };
    run(Command::new(peers.join(".venv/bin/python"))
        .current_dir(&peers)
        .args([
            "bench_invoke.py",
            "--skip-warm",
            "--cold-runs",
            "15",
            "--out",
        ])
        .arg(root.join(".local/peer-cold-start.json")))
}

/// invoke's warm path under criterion, then the peer's warm handlers (`handler`,
/// `handler_cached`, `handler_sdk`) on the same inputs.
fn warm(root: &Path) -> Result<()> {
    let Some(peers) = peers(root, "the warm path (its inputs are the peer's fixtures)")? else {
        return Ok(());
    };
    run(cargo()
        .current_dir(root)
        .args(["bench", "--package", "invoke", "--bench", "warm_path"])
        .env("PEER_INVOKE_DATA", peers.join("data/invoke")))?;
    run(Command::new(peers.join(".venv/bin/python"))
        .current_dir(&peers)
        .args(["bench_invoke.py", "--skip-cold", "--out"])
        .arg(root.join(".local/peer-warm.json")))
}

/// The leak scanner over the replies the peer's `bench_leakscan.py` builds (exported to JSON by
/// the peer's own code), then the peer's benchmark.
fn leakscan(root: &Path) -> Result<()> {
    let Some(peers) = peers(root, "the scan of the peer's replies and the peer's scan")? else {
        // The evaluation's families need no peer.
        return run(cargo().current_dir(root).args([
            "bench",
            "--package",
            "promptseal",
            "--bench",
            "leak_scan",
            "--",
            "leak_scan_family",
        ]));
    };
    let replies = peers.join("data/leakscan_replies.json");
    run(Command::new(peers.join(".venv/bin/python"))
        .current_dir(&peers)
        .args([
            "-c",
            "import json, sys, textbank; from bench_leakscan import build_replies; \
             replies, planted = build_replies(1000); \
             json.dump({'template_parts': [textbank.TEMPLATE_SYSTEM, textbank.TEMPLATE_USER], \
             'replies': replies, 'planted': planted}, open(sys.argv[1], 'w'))",
        ])
        .arg(&replies))?;
    run(cargo()
        .current_dir(root)
        .args(["bench", "--package", "promptseal", "--bench", "leak_scan"])
        .env("PEER_LEAKSCAN_DATA", &replies))?;
    run(Command::new(peers.join(".venv/bin/python"))
        .current_dir(&peers)
        .args(["bench_leakscan.py", "--out"])
        .arg(root.join(".local/peer-leakscan.json")))
}

/// The input tokens of a 10-turn conversation on the peer's 8 KB template, with and without
/// prompt caching, from the stand-in's accounting (devstack's `bench-conversation`).
fn conversation(root: &Path) -> Result<()> {
    let Some(peers) = peers(root, "the conversation (its template is the peer's)")? else {
        return Ok(());
    };
    let parts = peers.join("data/conversation_template.json");
    run(Command::new(peers.join(".venv/bin/python"))
        .current_dir(&peers)
        .args([
            "-c",
            "import json, sys, textbank; json.dump({'system': textbank.TEMPLATE_SYSTEM, \
             'user': textbank.TEMPLATE_USER}, open(sys.argv[1], 'w'))",
        ])
        .arg(&parts))?;
    run(cargo()
        .current_dir(root)
        .args(["build", "--package", "invoke", "--bin", "invoke"]))?;
    run(cargo()
        .current_dir(root)
        .args([
            "run",
            "--package",
            "promptseal-devstack",
            "--features",
            "sdk",
        ])
        .args(["--bin", "bench-conversation", "--"])
        .arg(&parts))
}

/// The vector search, then numpy's exact search over the vectors the benchmark wrote.
fn search(root: &Path) -> Result<()> {
    let data = root.join(".local/vector-search");
    run(cargo()
        .current_dir(root)
        .args(["bench", "--package", "promptseal", "--features", "fixtures"])
        .args(["--bench", "vector_search"])
        .env("VECTOR_SEARCH_DATA", &data))?;
    let venv = root.join(".local/bench-venv");
    python_venv(&venv, &root.join("tools/bench-requirements.txt"))?;
    run(Command::new(venv.join("bin/python"))
        .arg(root.join("tools/bench_vector_search.py"))
        .arg(&data)
        .arg("1024"))
}

/// Retrieval at full size against a local stack of its own (release builds), the Python peer's
/// cold load in the same run.
fn retrieval(root: &Path) -> Result<()> {
    let venv = root.join(".local/bench-venv");
    python_venv(&venv, &root.join("tools/bench-requirements.txt"))?;
    run(cargo()
        .current_dir(root)
        .args(["build", "--release", "--package", "retrieve-context"]))?;
    run(cargo()
        .current_dir(root)
        .args(["run", "--release", "--package", "promptseal-devstack"])
        .args(["--features", "bench", "--bin", "bench-retrieval"])
        .env("BENCH_VENV", &venv))
}

/// redact-log over the peer's corpus (generated by the peer's `gen_corpus.py` when missing), then
/// the peer's own pipeline with its keyed fingerprints and with its unkeyed fast scanner.
fn redact(root: &Path) -> Result<()> {
    let Some(peers) = peers(root, "redact-log (its corpus is the peer's)")? else {
        return Ok(());
    };
    let python = peers.join(".venv/bin/python");
    if !peers.join("data/cwl_events.jsonl.gz").exists() {
        run(Command::new(&python)
            .current_dir(&peers)
            .arg("gen_corpus.py"))?;
    }
    run(cargo()
        .current_dir(root)
        .args(["bench", "--package", "redact-log", "--bench", "redact"])
        .env("PEER_REDACT_DATA", peers.join("data")))?;
    for scanner in ["keyed", "fast"] {
        run(Command::new(&python)
            .current_dir(&peers)
            .args([
                "bench_redact.py",
                "--runs",
                "3",
                "--no-breakdown",
                "--scanner",
                scanner,
            ])
            .arg("--out")
            .arg(root.join(format!(".local/peer-redact-{scanner}.json"))))?;
    }
    Ok(())
}

/// The Python peers, copied out of `$PROMPTSEAL_PEERS` (by default ../shared/peers; read-only)
/// into .local/peers with their pinned venv and their deterministic fixtures, plus the template's
/// two parts as JSON (`data/invoke/template_parts.json`) for our benchmark to seal in its own
/// format. `None`, with a message naming what is skipped (`needed_for`), when they are not there.
fn peers(root: &Path, needed_for: &str) -> Result<Option<PathBuf>> {
    let source = std::env::var_os("PROMPTSEAL_PEERS")
        .map_or_else(|| root.join("../shared/peers"), PathBuf::from);
    if !source.is_dir() {
        println!(
            "The Python peers are not at {} (set PROMPTSEAL_PEERS to their directory): skipping {needed_for}.",
            source.display()
        );
        return Ok(None);
    }
    let dir = root.join(".local/peers");
    std::fs::create_dir_all(&dir)?;
    for entry in
        std::fs::read_dir(&source).with_context(|| format!("reading {}", source.display()))?
    {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::write(dir.join(entry.file_name()), std::fs::read(entry.path())?)?;
        }
    }
    python_venv(&dir.join(".venv"), &dir.join("requirements.txt"))?;
    let python = dir.join(".venv/bin/python");
    run(Command::new(&python)
        .current_dir(&dir)
        .arg("make_fixtures.py")
        .stdout(Stdio::null()))?;
    run(Command::new(&python).current_dir(&dir).args([
        "-c",
        "import json, textbank; json.dump({'system': textbank.TEMPLATE_SYSTEM, \
         'user': textbank.TEMPLATE_USER}, open('data/invoke/template_parts.json', 'w'))",
    ]))?;
    Ok(Some(dir))
}

/// (median, min, max)
fn stats(xs: &mut [f64]) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    let median = if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    };
    (median, xs[0], xs[n - 1])
}

/// Starts the binary as Lambda would, with the environment template.yaml gives invoke (resources
/// named `bench-<logical id>`, never reached); returns the time to its first poll for an event
/// and its peak RSS in KiB at that moment.
fn cold_once(root: &Path, binary: &Path) -> Result<(Duration, u64)> {
    let env = promptseal_devstack::function_environment(
        &root.join("template.yaml"),
        "InvokeFunction",
        &[],
        |id| format!("bench-{id}"),
    )?;
    promptseal_devstack::first_poll(binary, &env)
}
