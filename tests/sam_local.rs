//! `sam local invoke --env-vars events/local-stack.json` against the local stack. Running the
//! functions in SAM's containers takes Docker, which CI does not have; what SAM decides about
//! them does not. The environment each function gets is computed by the SAM CLI's own code
//! (tools/sam_local_env.py), from template.yaml and the env-vars file, and each function binary
//! is started with exactly that environment and nothing else (it must reach its first poll);
//! invoke, run with it under cargo-lambda's emulator, then answers the sample event of
//! `sam local invoke InvokeFunction -e events/invoke/http-api-jwt.json`.

mod common;

use std::path::Path;
use std::process::Command;

use promptseal_devstack::{
    EmulatedFunction, FunctionSpec, STACK_NAME, UP_AWS_PORT, UP_BEDROCK_PORT, first_poll,
};
use serde_json::Value;

/// Each function, its binary, and the parameters `sam local invoke` needs to see it (redact-log
/// exists only in isv-hosted mode).
const FUNCTIONS: [(&str, &str, &[&str]); 4] = [
    ("InvokeFunction", "invoke", &[]),
    (
        "RedactLogFunction",
        "redact-log",
        &[
            "DeploymentMode=isv-hosted",
            "BedrockLogGroupName=/aws/bedrock/modelinvocations",
        ],
    ),
    ("ExportLogsFunction", "export-logs", &[]),
    ("RetrieveContextFunction", "retrieve-context", &[]),
];

/// The environment `sam local invoke` gives `function` with `env_vars_file`, from a shell with
/// nothing set: SAM passes a declared variable from the shell too, and that must not help here.
fn sam_local_env(
    function: &str,
    env_vars_file: &Path,
    parameters: &[&str],
) -> Vec<(String, String)> {
    let root = common::root();
    let out = Command::new(root.join(".venv/bin/python"))
        .current_dir(&root)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", std::env::temp_dir())
        .arg("tools/sam_local_env.py")
        .arg("template.yaml")
        .arg(function)
        .arg(env_vars_file)
        .args(parameters)
        .output()
        .expect("running tools/sam_local_env.py from the venv");
    assert!(
        out.status.success(),
        "sam_local_env.py {function}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout).unwrap();
    env.into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
        .collect()
}

/// The endpoints `cargo xtask up` serves, which the env-vars file names.
fn up_endpoints() -> (String, String) {
    (
        format!("http://127.0.0.1:{UP_AWS_PORT}"),
        format!("http://127.0.0.1:{UP_BEDROCK_PORT}"),
    )
}

fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// events/local-stack.json rewritten for a stack of this test's own: its resource names and
/// the endpoints of the stack `cargo xtask test` runs.
fn env_vars_file_for(stack_name: &str, dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(common::root().join("events/local-stack.json")).unwrap();
    let (up_aws, up_bedrock) = up_endpoints();
    let text = text
        .replace(&format!("\"{STACK_NAME}-"), &format!("\"{stack_name}-"))
        .replace(
            &format!("alias/{STACK_NAME}-"),
            &format!("alias/{stack_name}-"),
        )
        .replace(
            &up_aws,
            &promptseal_devstack::endpoint_from_env("AWS_ENDPOINT_URL"),
        )
        .replace(&up_bedrock, &common::bedrock_endpoint());
    let path = dir.join(format!("{stack_name}.json"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_env_vars_file_points_every_function_at_the_stack_cargo_xtask_up_starts() {
    let file = common::root().join("events/local-stack.json");
    let (up_aws, up_bedrock) = up_endpoints();
    for (function, _, parameters) in FUNCTIONS {
        let env = sam_local_env(function, &file, parameters);
        assert_eq!(
            get(&env, "AWS_ENDPOINT_URL"),
            Some(up_aws.as_str()),
            "{function}"
        );
        assert_eq!(
            get(&env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"),
            Some("false"),
            "{function}"
        );
        for (name, value) in &env {
            if name.ends_with("_TABLE") {
                assert!(
                    value.starts_with(&format!("{STACK_NAME}-")),
                    "{function}: {name}={value}"
                );
            }
            if name.ends_with("_KEY_ID") && !name.starts_with("AWS_") {
                assert!(
                    value.starts_with(&format!("alias/{STACK_NAME}-")),
                    "{function}: {name}={value}"
                );
            }
        }
    }
    let invoke = sam_local_env("InvokeFunction", &file, &[]);
    assert_eq!(
        get(&invoke, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"),
        Some(up_bedrock.as_str())
    );
}

/// Without the env-vars file, no endpoint variable is set, and the SDK ignores any that is: a
/// deployment talks to AWS itself. Under `sam local invoke` without the file, SAM gives the
/// declared endpoints as "" (which the SDK cannot parse as an endpoint), and the SDK is told to
/// ignore them: every function still starts.
#[test]
fn without_the_env_vars_file_no_function_is_pointed_anywhere_but_aws() {
    let template = common::root().join("template.yaml");
    let no_file = std::env::temp_dir().join("sam-local-no-overrides.json");
    std::fs::write(&no_file, "{}").unwrap();
    for (function, binary, parameters) in FUNCTIONS {
        let overrides: Vec<_> = parameters
            .iter()
            .map(|p| p.split_once('=').unwrap())
            .collect();
        let deployed =
            promptseal_devstack::function_environment(&template, function, &overrides, |id| {
                format!("test-{id}")
            })
            .unwrap();
        assert!(
            deployed
                .iter()
                .all(|(k, _)| !k.starts_with("AWS_ENDPOINT_URL")),
            "{function}: {deployed:?}"
        );
        assert_eq!(
            get(&deployed, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"),
            Some("true")
        );
        let sam = sam_local_env(function, &no_file, parameters);
        assert_eq!(get(&sam, "AWS_ENDPOINT_URL"), Some(""), "{function}");
        assert_eq!(
            get(&sam, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"),
            Some("true"),
            "{function}"
        );
        if let Err(e) = first_poll(&common::binary_path(binary), &sam) {
            panic!("{function} with {sam:?}: {e:#}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_function_starts_with_what_sam_local_gives_it_and_invoke_answers_the_sample_event() {
    let stack = common::fresh_stack().await;
    let dir = std::env::temp_dir();
    let file = env_vars_file_for(&stack.resources.stack_name, &dir);
    let mut invoke_env = Vec::new();
    for (function, binary, parameters) in FUNCTIONS {
        let env = sam_local_env(function, &file, parameters);
        for (name, value) in stack.resources.env() {
            if let Some(given) = get(&env, &name) {
                assert_eq!(given, value, "{function}: {name}");
            }
        }
        if let Err(e) = first_poll(&common::binary_path(binary), &env) {
            panic!("{function} with {env:?}: {e:#}");
        }
        if function == "InvokeFunction" {
            invoke_env = env;
        }
    }

    // The operator's side, with the admin CLI: the demo template, and tenant acme allowed it.
    let root = common::root();
    let cli = |args: &[&str]| {
        let status = Command::new(common::binary_path("promptseal"))
            .current_dir(&root)
            .envs(stack.resources.env())
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "promptseal {args:?}: {status}");
    };
    cli(&[
        "template",
        "put",
        "demo/support-reply.toml",
        "--activate",
        "--created-by",
        "test",
    ]);
    cli(&["tenant", "put", "acme", "--template", "support-reply"]);

    let venv = root.join(".venv");
    let log_dir = dir.join(format!("sam-local-{}", stack.resources.stack_name));
    let function = EmulatedFunction::start(
        &FunctionSpec {
            venv: &venv,
            workspace: &root,
            binary: &common::binary_path("invoke"),
            log_dir: &log_dir,
        },
        invoke_env,
    )
    .unwrap();
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("events/invoke/http-api-jwt.json")).unwrap(),
    )
    .unwrap();
    let reply = tokio::task::spawn_blocking(move || function.invoke(&event))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply["statusCode"], 200, "{reply}");
    let body: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["template_id"], "support-reply");
    assert!(!body["output"].as_str().unwrap().is_empty(), "{body}");
}
