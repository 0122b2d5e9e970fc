//! `bench-conversation`, run by `cargo xtask bench conversation`: the input tokens billed at
//! full price over a 10-turn conversation on the Python peer's 8 KB template, with and without
//! prompt caching, as the Bedrock stand-in accounts them (a cache write on the first call with a
//! prefix, reads on repeats, nothing below the model's minimum). invoke runs under
//! cargo-lambda's emulator against a local stack of its own; the template's parts come from the
//! peer (the path given as the first argument, exported by the xtask).
//!
//! Three layouts of the same template: caching off (`PROMPT_CACHE_MIN_TOKENS=off`); the default
//! layout (the literal opening is cached when long enough: the peer's names the company in its
//! second sentence); and `values-after` (the system text cached whole, the values after it).

use std::path::Path;

use anyhow::{Context, Result, bail};
use promptseal::render::Renderer;
use promptseal::store::sealed::SealedStores;
use promptseal::store::tenants::TenantRegistry;
use promptseal::template::{
    CacheLayout, InferenceBounds, MessagePart, Role, TemplateDefinition, VariableSpec,
};
use promptseal::tenant::{PayloadLogging, Quotas, TenantSpec};
use promptseal_devstack::{
    EmulatedFunction, FunctionSpec, LocalStack, ensure_venv, target_dir, unique_name,
    workspace_root,
};
use serde_json::{Value, json};

const MODEL: &str = "anthropic.claude-sonnet-4-20250514-v1:0";
const TURNS: usize = 10;
const TENANT: &str = "acme";

/// The tokens of one conversation, summed over its turns.
#[derive(Default, Debug)]
struct Totals {
    full_price: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
}

fn main() -> Result<()> {
    let parts_path = std::env::args()
        .nth(1)
        .context("usage: bench-conversation TEMPLATE_PARTS_JSON (the peer's, from the xtask)")?;
    let parts: Value = serde_json::from_str(&std::fs::read_to_string(&parts_path)?)?;
    let system = parts["system"]
        .as_str()
        .context("no system part")?
        .to_owned();
    let user = format!(
        "{}\n\nQuestion: {{{{ question }}}}",
        parts["user"].as_str().context("no user part")?
    );
    let root = workspace_root();
    let venv = ensure_venv(&root)?;
    let local = LocalStack::start_in(&root, &venv, 0, 0)?;
    let rt = tokio::runtime::Runtime::new()?;
    let config = rt.block_on(local.sdk_config());
    let resources = rt.block_on(promptseal_devstack::provision(
        &config,
        &root.join("template.yaml"),
        &unique_name("bench"),
    ))?;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let templates = SealedStores::new(&config, ddb.clone()).templates(resources.sealed_tables());
    let names = variable_names(&format!("{system}\n{user}"));
    let values = sample_values(&names);
    let layouts = [
        ("off", "caching off", CacheLayout::Opening),
        ("opening", "the literal opening", CacheLayout::Opening),
        ("values-after", "values-after", CacheLayout::ValuesAfter),
    ];
    for (id, _, layout) in layouts {
        let definition = TemplateDefinition {
            id: format!("peer-{id}"),
            model_id: MODEL.into(),
            inference: InferenceBounds {
                max_tokens: 400,
                temperature_min: 0.0,
                temperature_max: 0.7,
                temperature_default: 0.2,
            },
            guardrail: None,
            leak_guard: Default::default(),
            retrieval: None,
            prompt_cache: layout,
            variables: names
                .iter()
                .map(|name| VariableSpec {
                    name: name.clone(),
                    required: true,
                    max_chars: 4000,
                })
                .collect(),
            system: system.clone(),
            messages: vec![MessagePart {
                role: Role::User,
                text: user.clone(),
            }],
        };
        rt.block_on(templates.put(definition, "bench", true, &Renderer::default()))?;
    }
    let tenants = TenantRegistry::new(ddb, resources.table("TenantsTable"));
    rt.block_on(
        tenants.put(&TenantSpec {
            tenant_id: TENANT.into(),
            templates: layouts
                .iter()
                .map(|(id, ..)| format!("peer-{id}"))
                .collect(),
            payload_logging: PayloadLogging {
                enabled: false,
                retention_days: 30,
            },
            quotas: Quotas::default(),
            export: None,
            preview: false,
            context: None,
        }),
    )?;

    let event: Value = serde_json::from_str(&std::fs::read_to_string(
        root.join("events/invoke/http-api-jwt.json"),
    )?)?;
    println!(
        "the peer's template: {} bytes of system text, {} of user part, {} variables; {TURNS} \
         turns on {MODEL} (the stand-in's minimum: 1,024 tokens per cache point)",
        system.len(),
        user.len(),
        names.len()
    );
    println!("\n| layout | input tokens at full price | cache reads | cache writes | output |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (id, label, _) in layouts {
        let minimums = if id == "off" { "off" } else { "" };
        let function = start_invoke(&root, &venv, &local, &resources, minimums)?;
        let totals = conversation(&function, &event, &format!("peer-{id}"), &values)?;
        println!(
            "| {label} | {} | {} | {} | {} |",
            totals.full_price, totals.cache_read, totals.cache_write, totals.output
        );
    }
    Ok(())
}

/// invoke under the emulator, with `PROMPT_CACHE_MIN_TOKENS` set when `minimums` is not empty.
fn start_invoke(
    root: &Path,
    venv: &Path,
    local: &LocalStack,
    resources: &promptseal_devstack::Resources,
    minimums: &str,
) -> Result<EmulatedFunction> {
    let mut env: Vec<(String, String)> = local.env().into_iter().chain(resources.env()).collect();
    env.push(("DEPLOYMENT_MODE".into(), "tenant-hosted".into()));
    env.push(("LOGGING_CHECK_TTL_SECONDS".into(), "0".into()));
    if !minimums.is_empty() {
        env.push(("PROMPT_CACHE_MIN_TOKENS".into(), minimums.into()));
    }
    EmulatedFunction::start(
        &FunctionSpec {
            venv,
            workspace: root,
            binary: &target_dir(root).join("debug/invoke"),
            log_dir: &root.join(".local/bench-conversation"),
        },
        env,
    )
}

/// Ten turns of one conversation: each sends the earlier turns back, as a chat client does.
fn conversation(
    function: &EmulatedFunction,
    event: &Value,
    template: &str,
    values: &serde_json::Map<String, Value>,
) -> Result<Totals> {
    let mut history: Vec<Value> = Vec::new();
    let mut totals = Totals::default();
    for turn in 1..=TURNS {
        let mut variables = values.clone();
        variables.insert(
            "question".into(),
            json!("Why is invoice INV-2026-0931 still waiting for approval?"),
        );
        let mut request = event.clone();
        request["body"] = json!(
            json!({ "template_id": template, "variables": variables, "history": history })
                .to_string()
        );
        let reply = function.invoke(&request)?;
        let body: Value = serde_json::from_str(reply["body"].as_str().unwrap_or("null"))?;
        if reply["statusCode"] != 200 {
            bail!("turn {turn} of {template}: {body}");
        }
        let usage = &body["usage"];
        let count = |k: &str| usage[k].as_u64().unwrap_or(0);
        totals.full_price += count("input_tokens");
        totals.cache_read += count("cache_read_input_tokens");
        totals.cache_write += count("cache_write_input_tokens");
        totals.output += count("output_tokens");
        history.push(json!({ "role": "assistant", "text": body["output"] }));
        history.push(json!({
            "role": "user",
            "text": format!("Thanks. Follow-up {turn}: what should I check next?"),
        }));
    }
    Ok(totals)
}

/// Every `{{ name }}` of the template, each once, in order (`question` is the message's own).
fn variable_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for piece in text.split("{{").skip(1) {
        if let Some((name, _)) = piece.split_once("}}") {
            let name = name.trim().to_owned();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.retain(|n| n != "question");
    names.push("question".into());
    names
}

/// A value for each variable: documents of about 2 KB (as the peer's), short values otherwise.
fn sample_values(names: &[String]) -> serde_json::Map<String, Value> {
    names
        .iter()
        .filter(|n| *n != "question")
        .map(|name| {
            let value = if name.starts_with("doc_") && !name.ends_with("_title") {
                "Invoices above the approval threshold wait for a second approver from the \
                 controlling department; the approver is notified by mail and in the app. "
                    .repeat(14)
            } else {
                format!("sample {name}")
            };
            (name.clone(), json!(value))
        })
        .collect()
}
