//! Developer automation, run as `cargo xtask <command>`: the local stack, the demo, the whole test
//! run (what CI runs) and the SAM build. Python tools come from a project-local venv that this
//! program creates and keeps in step with tools/requirements.txt.

mod bench;
mod demo;
mod stack;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <command>

  demo    start the local stack, walk through the product, stop it
  test    fmt, clippy, template lint, and every test against the local stack (what CI runs)
  up      start the local stack and keep it running until interrupted
  down    stop a stack that `up` started
  build   sam build: the deployable artefacts
  bench cold-start [RUNS]
          the release invoke binary's cold start and peak RSS, then the Python peer's
  bench warm
          invoke's warm in-process path (criterion), then the Python peer's warm handlers
  venv    create or update the project venv (.venv) with the pinned Python tools";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().cloned();
    let root = root();
    let result = match command.as_deref() {
        Some("demo") => demo::run(&root),
        Some("test") => test(&root),
        Some("up") => stack::up(&root),
        Some("down") => stack::down(&root),
        Some("build") => build(&root),
        Some("bench") => bench::run_bench(&root, &args[1..]),
        Some("venv") => ensure_venv(&root).map(|_| ()),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Where cargo puts build output (CARGO_TARGET_DIR, or the workspace's target/).
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(Into::into)
        .unwrap_or_else(|| root.join("target"))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs a command to completion, echoing it first; fails unless it exits 0.
fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!("$ {shown}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// Creates `.venv` and installs tools/requirements.txt into it, unless it already matches.
fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".venv");
    python_venv(&venv, &root.join("tools/requirements.txt"))?;
    Ok(venv)
}

/// Creates (or brings up to date) a venv holding exactly the pinned `requirements`; a stamp file
/// makes later runs free.
fn python_venv(venv: &Path, requirements: &Path) -> Result<()> {
    let pinned = std::fs::read_to_string(requirements)?;
    let stamp = venv.join(".promptseal-requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(pinned.as_str()) {
        return Ok(());
    }
    eprintln!(
        "xtask: installing {} into {}",
        requirements.display(),
        venv.display()
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(python).args(["-m", "venv"]).arg(venv))?;
    let pip = venv.join("bin/pip");
    run(Command::new(&pip).args(["install", "--quiet", "--upgrade", "pip"]))?;
    run(Command::new(&pip)
        .args(["install", "--quiet", "-r"])
        .arg(requirements))?;
    std::fs::write(&stamp, pinned)?;
    Ok(())
}

/// PATH with the venv's bin directory first (cargo-lambda, zig, sam).
fn path_with_venv(venv: &Path) -> std::ffi::OsString {
    let mut paths = vec![venv.join("bin")];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).expect("PATH entries contain no separator")
}

/// Lints template.yaml with cfn-lint and `sam validate --lint` (both offline).
fn lint_template(root: &Path, venv: &Path) -> Result<()> {
    run(Command::new(venv.join("bin/cfn-lint"))
        .current_dir(root)
        .arg("template.yaml"))?;
    run(Command::new(venv.join("bin/sam"))
        .current_dir(root)
        .args(["validate", "--lint", "--template", "template.yaml"])
        .args(["--region", promptseal_devstack::REGION])
        .env("SAM_CLI_TELEMETRY", "0"))
}

/// Everything CI checks: formatting, lints, the template, and every test against the local stack.
fn test(root: &Path) -> Result<()> {
    let venv = ensure_venv(root)?;
    run(cargo()
        .current_dir(root)
        .args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().current_dir(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    lint_template(root, &venv)?;
    let running = stack::start(root, &venv, 0, 0)?;
    eprintln!(
        "xtask: local stack up (AWS emulator {}, Bedrock stand-in {})",
        running.aws_endpoint, running.bedrock_endpoint
    );
    run(cargo()
        .current_dir(root)
        .args(["test", "--workspace", "--locked", "--no-fail-fast"])
        .envs(running.env()))
}

/// `sam build`: compiles every function with cargo-lambda for provided.al2023 / arm64.
fn build(root: &Path) -> Result<()> {
    let venv = ensure_venv(root)?;
    lint_template(root, &venv)?;
    run(Command::new(venv.join("bin/sam"))
        .current_dir(root)
        .args(["build", "--template", "template.yaml"])
        .env("PATH", path_with_venv(&venv))
        .env("SAM_CLI_TELEMETRY", "0")
        .env("SAM_CLI_BETA_RUST_CARGO_LAMBDA", "1"))
}
