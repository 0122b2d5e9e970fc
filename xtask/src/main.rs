//! Developer automation, run as `cargo xtask <command>`: the local stack, the demo, the whole test
//! run (what CI runs) and the SAM build. Python tools come from a project-local venv that this
//! program creates and keeps in step with tools/requirements.txt. xtask itself is built without
//! the AWS SDK, so it starts at once: the demo is its own crate (`demo/`), and `up` provisions
//! through devstack's `provision` program.

mod bench;
mod stack;

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::Result;
use promptseal_devstack::{LocalStack, cargo, ensure_venv, path_with_venv, run, workspace_root};

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
  bench leakscan | redact | export
          the leak scan, redact-log, export-logs (criterion), each beside its peer if any
  bench search
          the vector search over 50,000 x 1,024 (criterion), then numpy's exact search
  venv    create or update the project venv (.venv) with the pinned Python tools";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().cloned();
    let root = workspace_root();
    let result = match command.as_deref() {
        Some("demo") => {
            run(cargo()
                .current_dir(&root)
                .args(["run", "--quiet", "--package", "promptseal-demo"]))
        }
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

/// Lints template.yaml and tenant-context.yaml with cfn-lint and `sam validate --lint` (both
/// offline).
fn lint_template(root: &Path, venv: &Path) -> Result<()> {
    for template in ["template.yaml", "tenant-context.yaml"] {
        run(Command::new(venv.join("bin/cfn-lint"))
            .current_dir(root)
            .arg(template))?;
        run(Command::new(venv.join("bin/sam"))
            .current_dir(root)
            .args(["validate", "--lint", "--template", template])
            .args(["--region", promptseal_devstack::REGION])
            .env("SAM_CLI_TELEMETRY", "0"))?;
    }
    Ok(())
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
    let running = LocalStack::start_in(root, &venv, 0, 0)?;
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
