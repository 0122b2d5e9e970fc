//! Every function binary starts with exactly the environment template.yaml gives it and reaches
//! the Lambda runtime API's poll for an event: a variable the code requires but the template
//! does not set (or sets to something the code refuses) fails here, not in a deployment. Both
//! deployment modes, since values differ between them.

mod common;

use promptseal_devstack::{first_poll, function_environment};

const FUNCTIONS: [(&str, &str); 5] = [
    ("InvokeFunction", "invoke"),
    ("InvokeStreamFunction", "invoke-stream"),
    ("RedactLogFunction", "redact-log"),
    ("ExportLogsFunction", "export-logs"),
    ("RetrieveContextFunction", "retrieve-context"),
];

/// What `function` starts with for `mode`.
fn environment(function: &str, mode: &str) -> Vec<(String, String)> {
    function_environment(
        &common::root().join("template.yaml"),
        function,
        &[
            ("DeploymentMode", mode),
            ("BedrockLogGroupName", "/aws/bedrock/modelinvocations"),
            ("HostedTenantId", "acme"),
        ],
        |id| format!("test-{id}"),
    )
    .unwrap()
}

#[test]
fn every_function_starts_with_the_environment_template_yaml_gives_it() {
    for mode in ["isv-hosted", "tenant-hosted"] {
        for (function, binary) in FUNCTIONS {
            let env = environment(function, mode);
            if let Err(e) = first_poll(&common::binary_path(binary), &env) {
                panic!("{function} ({mode}) with {env:?}: {e:#}");
            }
        }
    }
}

/// In a tenant's account, retrieve-context serves that tenant alone; in the ISV's, whoever
/// invoke names.
#[test]
fn retrieve_context_is_pinned_to_the_tenant_in_tenant_hosted_mode() {
    let hosted = |mode| {
        environment("RetrieveContextFunction", mode)
            .into_iter()
            .find(|(k, _)| k == "HOSTED_TENANT_ID")
            .map(|(_, v)| v)
    };
    assert_eq!(hosted("tenant-hosted").as_deref(), Some("acme"));
    assert_eq!(hosted("isv-hosted"), None);
}

/// The check can fail: without one of its variables a function stops before polling, and says
/// which.
#[test]
fn a_function_missing_a_variable_stops_before_its_first_poll() {
    for (function, binary) in FUNCTIONS {
        let mut env = environment(function, "isv-hosted");
        let (missing, _) = env
            .iter()
            .find(|(k, _)| k.ends_with("_TABLE"))
            .cloned()
            .unwrap();
        env.retain(|(k, _)| *k != missing);
        let err = first_poll(&common::binary_path(binary), &env).unwrap_err();
        assert!(format!("{err:#}").contains(&missing), "{function}: {err:#}");
    }
}
