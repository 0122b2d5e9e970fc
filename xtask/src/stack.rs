//! `up` and `down`: the local stack kept running for a shell to use.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use promptseal_devstack::{
    LocalStack, STACK_NAME, UP_AWS_PORT, UP_BEDROCK_PORT, cargo, ensure_venv,
};

pub fn up(root: &Path) -> Result<()> {
    let venv = ensure_venv(root)?;
    let stack = LocalStack::start_in(root, &venv, UP_AWS_PORT, UP_BEDROCK_PORT)?;
    let resources = provision(root, &stack)?;
    let env_file = root.join(".local/stack.env");
    let exports: String = stack
        .env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .chain(resources.lines().map(str::to_owned))
        .map(|line| format!("export {line}\n"))
        .collect();
    std::fs::write(&env_file, &exports)?;
    let pids: Vec<String> = std::iter::once(std::process::id())
        .chain(stack.pids())
        .map(|p| p.to_string())
        .collect();
    std::fs::write(root.join(".local/stack.pids"), pids.join("\n"))?;
    println!(
        "local stack running: AWS emulator {}, Bedrock stand-in {}",
        stack.aws_endpoint, stack.bedrock_endpoint
    );
    println!("point a shell at it with:  source .local/stack.env");
    println!("stop it with Ctrl-C, or `cargo xtask down` from another shell");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(tokio::signal::ctrl_c())?;
    drop(stack);
    let _ = std::fs::remove_file(root.join(".local/stack.pids"));
    Ok(())
}

/// Creates template.yaml's resources for the stack `promptseal`, through devstack's `provision`
/// program (the AWS SDK lives there, not in xtask); returns its `NAME=value` lines.
fn provision(root: &Path, stack: &LocalStack) -> Result<String> {
    let out = cargo()
        .current_dir(root)
        .args(["run", "--quiet", "--package", "promptseal-devstack"])
        .args(["--features", "sdk", "--bin", "provision", "--"])
        .args([stack.aws_endpoint.as_str(), STACK_NAME])
        .stderr(Stdio::inherit())
        .output()
        .context("running devstack's provision")?;
    if !out.status.success() {
        bail!("provisioning the local stack failed ({})", out.status);
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Stops what `up` started, by the pids it recorded.
pub fn down(root: &Path) -> Result<()> {
    let file = root.join(".local/stack.pids");
    let pids = std::fs::read_to_string(&file)
        .with_context(|| format!("no running stack recorded in {}", file.display()))?;
    // Children first, then `up` itself.
    for pid in pids.lines().rev() {
        let _ = std::process::Command::new("kill").arg(pid).status();
    }
    std::fs::remove_file(&file)?;
    let _ = std::fs::remove_file(root.join(".local/stack.env"));
    println!("local stack stopped");
    Ok(())
}
