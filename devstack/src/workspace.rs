//! Workspace chores shared by `cargo xtask` and the demo: the project venv with the pinned Python
//! tools, running cargo and other commands, and starting the local stack from a fresh build of
//! the stand-in.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{LocalStack, StackPaths};

/// The workspace root (this crate lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("devstack lives one level below the workspace root")
        .to_path_buf()
}

/// Where cargo puts build output (CARGO_TARGET_DIR, or the workspace's target/).
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(Into::into)
        .unwrap_or_else(|| root.join("target"))
}

/// The cargo that runs us (or `cargo` from PATH).
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs a command to completion, echoing it first; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
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
pub fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".venv");
    python_venv(&venv, &root.join("tools/requirements.txt"))?;
    Ok(venv)
}

/// Creates (or brings up to date) a venv holding exactly the pinned `requirements`; a stamp file
/// makes later runs free.
pub fn python_venv(venv: &Path, requirements: &Path) -> Result<()> {
    let pinned = std::fs::read_to_string(requirements)?;
    let stamp = venv.join(".promptseal-requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(pinned.as_str()) {
        return Ok(());
    }
    eprintln!(
        "installing {} into {}",
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
pub fn path_with_venv(venv: &Path) -> OsString {
    let mut paths = vec![venv.join("bin")];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).expect("PATH entries contain no separator")
}

impl LocalStack {
    /// Builds the stand-in and starts the workspace's stack on the given ports (0: any free
    /// port), logging to `.local/logs`.
    pub fn start_in(root: &Path, venv: &Path, aws_port: u16, bedrock_port: u16) -> Result<Self> {
        run(cargo()
            .current_dir(root)
            .args(["build", "--quiet", "--package", "bedrock-standin"]))?;
        let paths = StackPaths {
            venv: venv.to_path_buf(),
            emulator: root.join("tools/aws_emulator.py"),
            standin: target_dir(root).join("debug/bedrock-standin"),
            logs: root.join(".local/logs"),
        };
        Self::start(&paths, aws_port, bedrock_port)
    }
}
