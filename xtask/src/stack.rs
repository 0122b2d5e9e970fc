//! Starting and stopping the local stack for `up`, `down`, `demo` and `test`.

use std::path::Path;

use anyhow::{Context, Result};
use promptseal_devstack::{LocalStack, Resources, StackPaths};

use crate::{cargo, ensure_venv, run};

/// Ports `cargo xtask up` listens on, so a shell can be pointed at it once.
const UP_AWS_PORT: u16 = 4566;
const UP_BEDROCK_PORT: u16 = 4599;
/// The stack name local resources are named for: the README's defaults.
pub const STACK_NAME: &str = "promptseal";

/// Builds the stand-in and starts the stack on the given ports (0: any free port).
pub fn start(root: &Path, venv: &Path, aws_port: u16, bedrock_port: u16) -> Result<LocalStack> {
    run(cargo()
        .current_dir(root)
        .args(["build", "--quiet", "--package", "bedrock-standin"]))?;
    let target = crate::target_dir(root);
    let paths = StackPaths {
        venv: venv.to_path_buf(),
        emulator: root.join("tools/aws_emulator.py"),
        standin: target.join("debug/bedrock-standin"),
        logs: root.join(".local/logs"),
    };
    LocalStack::start(&paths, aws_port, bedrock_port)
}

/// Creates template.yaml's resources for the stack `promptseal`.
pub async fn provision(root: &Path, stack: &LocalStack) -> Result<Resources> {
    let config = stack.sdk_config().await;
    promptseal_devstack::provision(&config, &root.join("template.yaml"), STACK_NAME).await
}

pub fn up(root: &Path) -> Result<()> {
    let venv = ensure_venv(root)?;
    let stack = start(root, &venv, UP_AWS_PORT, UP_BEDROCK_PORT)?;
    let rt = tokio::runtime::Runtime::new()?;
    let resources = rt.block_on(provision(root, &stack))?;
    let env_file = root.join(".local/stack.env");
    let exports: String = stack
        .env()
        .into_iter()
        .chain(resources.env())
        .map(|(k, v)| format!("export {k}={v}\n"))
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
    rt.block_on(tokio::signal::ctrl_c())?;
    drop(stack);
    let _ = std::fs::remove_file(root.join(".local/stack.pids"));
    Ok(())
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
