//! `provision ENDPOINT STACK_NAME`: creates template.yaml's tables and keys in the AWS emulator at
//! ENDPOINT for a stack of that name, and prints the variables that point the functions and the
//! CLI at them (`NAME=value`, one a line). `cargo xtask up` runs it, so that xtask itself needs no
//! AWS SDK.

use anyhow::{Context, Result};
use promptseal_devstack::{emulator_config, provision, workspace_root};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(endpoint), Some(stack_name), None) = (args.next(), args.next(), args.next()) else {
        anyhow::bail!("usage: provision ENDPOINT STACK_NAME");
    };
    let config = emulator_config(&endpoint).await;
    let template = workspace_root().join("template.yaml");
    let resources = provision(&config, &template, &stack_name)
        .await
        .with_context(|| format!("provisioning {} at {endpoint}", template.display()))?;
    for (name, value) in resources.env() {
        println!("{name}={value}");
    }
    Ok(())
}
