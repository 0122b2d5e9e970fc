//! `promptseal`, the admin CLI for the ISV's operators: seal and manage template versions, register
//! tenants, read the usage ledger. It uses the standard AWS credential chain and endpoint
//! variables, so the same binary works against an AWS account and against the local stack.

mod context;
mod output;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use promptseal::envelope::{CachePolicy, Envelope};
use promptseal::leak::Scanner;
use promptseal::render::Renderer;
use promptseal::store::context::ContextStore;
use promptseal::store::sealed::{SealedStores, SealedTables};
use promptseal::store::templates::TemplateStore;
use promptseal::store::tenants::TenantRegistry;
use promptseal::store::usage::UsageLedger;
use promptseal::template::TemplateDefinition;
use promptseal::tenant::{
    ExportDestination, PayloadLogging, Quotas, TenantContext, TenantSpec, TenantStatus,
};

use output::Output;

/// Operate promptseal: templates, tenants and usage.
#[derive(Parser)]
#[command(name = "promptseal", version)]
struct Cli {
    /// Print JSON instead of text, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Command,
}

/// Where promptseal's resources are (the names template.yaml gives them for a stack `promptseal`).
#[derive(Args)]
struct Config {
    #[arg(
        long,
        global = true,
        env = "TEMPLATES_TABLE",
        default_value = "promptseal-templates"
    )]
    templates_table: String,
    #[arg(
        long,
        global = true,
        env = "TENANTS_TABLE",
        default_value = "promptseal-tenants"
    )]
    tenants_table: String,
    #[arg(
        long,
        global = true,
        env = "USAGE_TABLE",
        default_value = "promptseal-usage"
    )]
    usage_table: String,
    /// KMS key (id, ARN or alias) for template data keys.
    #[arg(
        long,
        global = true,
        env = "TEMPLATE_KEY_ID",
        default_value = "alias/promptseal-templates"
    )]
    template_key_id: String,
    #[arg(
        long,
        global = true,
        env = "FINGERPRINTS_TABLE",
        default_value = "promptseal-fingerprints"
    )]
    fingerprints_table: String,
    /// KMS key (id, ARN or alias) for the data keys of template fingerprints.
    #[arg(
        long,
        global = true,
        env = "FINGERPRINT_KEY_ID",
        default_value = "alias/promptseal-fingerprints"
    )]
    fingerprint_key_id: String,
    #[arg(
        long,
        global = true,
        env = "CONTEXT_TABLE",
        default_value = "promptseal-context"
    )]
    context_table: String,
    /// The S3 bucket of context vectors (template.yaml's VectorBucket).
    #[arg(long, global = true, env = "VECTOR_BUCKET")]
    vector_bucket: Option<String>,
    /// The S3 Vectors bucket, name or ARN (template.yaml's VectorIndexBucket), of collections
    /// that keep their vectors in S3 Vectors.
    #[arg(long, global = true, env = "VECTOR_INDEX_BUCKET")]
    vector_index_bucket: Option<String>,
    /// KMS key (id, ARN or alias) for the data keys of context chunks.
    #[arg(
        long,
        global = true,
        env = "CONTEXT_KEY_ID",
        default_value = "alias/promptseal-context"
    )]
    context_key_id: String,
    /// In a tenant's own account (tenant-context.yaml): the tenant whose context store this is.
    /// Ingestion then takes no registry, keeps that tenant's collections only, and seals under
    /// --context-key-id, the tenant's own key.
    #[arg(long, global = true, env = "HOSTED_TENANT_ID")]
    hosted_tenant: Option<String>,
    /// KMS key (id, ARN or alias) for the data keys of context vectors.
    #[arg(
        long,
        global = true,
        env = "VECTOR_KEY_ID",
        default_value = "alias/promptseal-vectors"
    )]
    vector_key_id: String,
}

impl Config {
    /// The context store and its keys, the embedding model's client and the tenant registry.
    fn context(
        self,
        sdk: &aws_config::SdkConfig,
        ddb: aws_sdk_dynamodb::Client,
    ) -> Result<context::ContextConfig> {
        let bucket = self
            .vector_bucket
            .context("--vector-bucket (or VECTOR_BUCKET) names the stack's vector bucket")?;
        let kms = aws_sdk_kms::Client::new(sdk);
        let envelope = |key: String| Envelope::new(kms.clone(), key, CachePolicy::default());
        Ok(context::ContextConfig {
            store: ContextStore::connect(
                sdk,
                self.context_table,
                bucket,
                self.vector_index_bucket.as_deref(),
            ),
            text: envelope(self.context_key_id),
            vectors: envelope(self.vector_key_id),
            fingerprints: envelope(self.fingerprint_key_id),
            bedrock: aws_sdk_bedrockruntime::Client::new(sdk),
            bedrock_control: aws_sdk_bedrock::Client::new(sdk),
            tenants: TenantRegistry::new(ddb, self.tenants_table),
            hosted_tenant: self.hosted_tenant,
        })
    }

    /// The template store (with its fingerprints) these settings name.
    fn template_store(
        self,
        sdk: &aws_config::SdkConfig,
        ddb: aws_sdk_dynamodb::Client,
    ) -> TemplateStore {
        SealedStores::new(sdk, ddb).templates(SealedTables {
            templates_table: self.templates_table,
            template_key_id: self.template_key_id,
            fingerprints_table: self.fingerprints_table,
            fingerprint_key_id: self.fingerprint_key_id,
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Seal, list and manage prompt templates.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Register and manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Ingest, list and delete retrieval context: the ISV's knowledge and tenants' documents.
    #[command(subcommand)]
    Context(context::ContextCommand),
    /// Report where a text (a transcript, a model reply) repeats a template version, also when
    /// disguised. Prints byte offsets, lengths, scores and forms, never the text; exits with 3
    /// when anything is found. With --jsonl, reads many texts, one JSON object per line
    /// ({"text", "template"?, "version"?, "id"?}; --template and --version are the defaults),
    /// and prints one verdict per line; exits with 1 if a line could not be scanned.
    Scan {
        /// The template whose fingerprints to scan for (with --jsonl: for lines naming none).
        #[arg(long, required_unless_present_any = ["jsonl", "collection"])]
        template: Option<String>,
        /// Scan for the documents of this ISV knowledge collection (`context ingest --isv`)
        /// instead of a template: each document the collection lists, by its fingerprints.
        #[arg(long, conflicts_with_all = ["template", "jsonl", "version"])]
        collection: Option<String>,
        /// Read JSON Lines, one text per line, and print one verdict per line.
        #[arg(long)]
        jsonl: bool,
        /// The version (default: the active one).
        #[arg(long)]
        version: Option<u32>,
        /// The text to scan: a file, or - for standard input.
        input: PathBuf,
    },
    /// Show a tenant's usage ledger.
    Usage {
        tenant_id: String,
        /// First day to show (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Subcommand)]
enum TemplateCommand {
    /// Check, seal and store a template file (TOML) as the template's next version.
    Put {
        file: PathBuf,
        /// Make the new version the active one.
        #[arg(long)]
        activate: bool,
        /// Recorded as the version's creator (default: the caller's AWS identity).
        #[arg(long)]
        created_by: Option<String>,
    },
    /// List templates with their active and latest versions.
    List,
    /// List a template's versions.
    Versions { template_id: String },
    /// Show a version's metadata (the active one unless --version is given).
    Show {
        template_id: String,
        #[arg(long)]
        version: Option<u32>,
        /// Also decrypt and print the template text.
        #[arg(long)]
        decrypt: bool,
    },
    /// Compute fingerprints again from the text, for versions sealed by an earlier release: of
    /// one version (the active one unless --version is given), or with --all of every version of
    /// the template, or of every template when no ID is given.
    Refingerprint {
        #[arg(required_unless_present = "all")]
        template_id: Option<String>,
        #[arg(long, conflicts_with = "all")]
        version: Option<u32>,
        /// Every version, retired ones too (redact-log may still read their logs).
        #[arg(long)]
        all: bool,
    },
    /// Make a version the active one.
    Activate { template_id: String, version: u32 },
    /// Retire a version so it can no longer be used.
    Retire { template_id: String, version: u32 },
}

#[derive(Args)]
struct TenantPut {
    tenant_id: String,
    /// A template the tenant may use (repeat for several).
    #[arg(long = "template")]
    templates: Vec<String>,
    /// Keep redacted payload records for this tenant.
    #[arg(long)]
    payload_logging: bool,
    /// How long payload records are kept.
    #[arg(long, default_value_t = 30)]
    retention_days: u16,
    #[arg(long)]
    daily_tokens: Option<u64>,
    #[arg(long)]
    daily_requests: Option<u64>,
    /// The S3 bucket export-logs delivers the tenant's payload records to.
    #[arg(long, requires = "export_account")]
    export_bucket: Option<String>,
    /// The AWS account that owns the export bucket (and the export role): every write
    /// names it as the bucket's expected owner.
    #[arg(long, requires = "export_bucket")]
    export_account: Option<String>,
    /// Key prefix in the export bucket (for example `promptseal/`).
    #[arg(long, requires = "export_bucket", default_value = "")]
    export_prefix: String,
    /// KMS key (id or ARN) for SSE-KMS on exported objects.
    #[arg(long, requires = "export_bucket")]
    export_kms_key: Option<String>,
    /// IAM role in the tenant's account that export-logs assumes to write there.
    #[arg(long, requires = "export_bucket")]
    export_role: Option<String>,
    /// Let the tenant call draft versions (never activated) by number, to try them first.
    #[arg(long)]
    preview: bool,
    /// The tenant's own KMS key (its key ARN; not an alias) its context documents are sealed under
    /// (bring your own key): invoke opens them only through it, so the tenant can switch
    /// access off in the key's policy.
    #[arg(long)]
    context_key: Option<String>,
    /// The tenant's own retrieve-context (function ARN, in the key's account and region,
    /// deployed with tenant-context.yaml): its collections are searched there, at home.
    #[arg(long, requires = "context_key")]
    context_function: Option<String>,
    /// Drop the tenant's own key and function (its documents must then be ingested again into
    /// the ISV's store). Without it, and without --context-key, a tenant keeps the ones it has:
    /// replacing its other settings never switches its key off by accident.
    #[arg(long, conflicts_with = "context_key")]
    clear_context: bool,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Register a tenant, or replace an existing tenant's settings (its status is kept).
    Put(Box<TenantPut>),
    /// Show one tenant.
    Get { tenant_id: String },
    /// List every tenant.
    List,
    /// Suspend a tenant: its requests are refused until it is resumed.
    Suspend { tenant_id: String },
    /// Reactivate a suspended tenant.
    Resume { tenant_id: String },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output { json: cli.json };
    match run(cli, &out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<LeaksFound>() => {
            eprintln!("{e}");
            ExitCode::from(3)
        }
        Err(e) => {
            // The context store's refusals lead with their stable code.
            match e
                .chain()
                .find_map(|c| c.downcast_ref::<promptseal::store::context::ContextStoreError>())
            {
                Some(store) => eprintln!("error: {}: {e}", store.code()),
                None => eprintln!("error: {e}"),
            }
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, out: &Output) -> Result<()> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let config = cli.config;
    match cli.command {
        Command::Template(cmd) => template(cmd, &config.template_store(&sdk, ddb), &sdk, out).await,
        Command::Scan {
            collection: Some(collection),
            input,
            ..
        } => scan_collection(&config.context(&sdk, ddb)?, &collection, &input, out).await,
        Command::Scan {
            template,
            jsonl,
            version,
            input,
            collection: None,
        } => {
            let store = config.template_store(&sdk, ddb);
            match (jsonl, template) {
                (true, template) => scan_lines(&store, template, version, &input).await,
                (false, Some(template)) => scan(&store, &template, version, &input, out).await,
                (false, None) => unreachable!("clap requires --template without --jsonl"),
            }
        }
        Command::Tenant(cmd) => {
            let registry = TenantRegistry::new(ddb, config.tenants_table);
            tenant(cmd, &registry, &sdk, out).await
        }
        Command::Context(cmd) => context::run(cmd, &config.context(&sdk, ddb)?, out).await,
        Command::Usage { tenant_id, since } => {
            let ledger = UsageLedger::new(ddb, config.usage_table);
            out.usage(&ledger.query(&tenant_id, since.as_deref()).await?)
        }
    }
}

async fn template(
    cmd: TemplateCommand,
    store: &TemplateStore,
    sdk: &aws_config::SdkConfig,
    out: &Output,
) -> Result<()> {
    match cmd {
        TemplateCommand::Put {
            file,
            activate,
            created_by,
        } => {
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let definition: TemplateDefinition = toml::from_str(&source)
                .with_context(|| format!("{} is not a valid template file", file.display()))?;
            let created_by = match created_by {
                Some(who) => who,
                None => caller_identity(sdk).await?,
            };
            let meta = store
                .put(definition, &created_by, activate, &Renderer::default())
                .await
                .with_context(|| format!("refused {}", file.display()))?;
            out.put_result(&meta, activate)
        }
        TemplateCommand::List => out.templates(&store.list().await?),
        TemplateCommand::Versions { template_id } => {
            let active = store
                .head(&template_id)
                .await?
                .and_then(|h| h.active_version);
            out.versions(&store.versions(&template_id).await?, active)
        }
        TemplateCommand::Show {
            template_id,
            version,
            decrypt,
        } => {
            let stored = store.version(&template_id, version).await?;
            let text = match decrypt {
                true => Some(store.decrypt(&stored).await?),
                false => None,
            };
            out.version(&stored.meta, text.as_ref())
        }
        TemplateCommand::Refingerprint {
            template_id,
            version,
            all,
        } => {
            let targets = match (template_id, all) {
                (Some(id), false) => vec![(id, version)],
                (id, _) => every_version(store, id).await?,
            };
            let mut done = Vec::with_capacity(targets.len());
            for (id, version) in targets {
                // Each version is replaced whole, so a run stopped here can simply be repeated.
                let meta = store.refingerprint(&id, version).await.with_context(|| {
                    format!("{id}: stopped after {} version(s) done", done.len())
                })?;
                done.push(meta);
            }
            out.refingerprinted(&done)
        }
        TemplateCommand::Activate {
            template_id,
            version,
        } => {
            store.activate(&template_id, version).await?;
            out.done(&format!("{template_id} version {version} is now active"))
        }
        TemplateCommand::Retire {
            template_id,
            version,
        } => {
            store.retire(&template_id, version).await?;
            out.done(&format!("{template_id} version {version} is retired"))
        }
    }
}

/// Every version of template `id`, or of every template: `(id, Some(version))` pairs.
async fn every_version(
    store: &TemplateStore,
    id: Option<String>,
) -> Result<Vec<(String, Option<u32>)>> {
    let ids = match id {
        Some(id) => vec![id],
        None => store
            .list()
            .await?
            .into_iter()
            .map(|t| t.template_id)
            .collect(),
    };
    let mut out = Vec::new();
    for id in ids {
        let versions = store.versions(&id).await?;
        out.extend(versions.into_iter().map(|v| (id.clone(), Some(v.version))));
    }
    Ok(out)
}

/// Scans a text for one version's fingerprints (no template text is decrypted).
/// The text to scan: a file, or standard input for `-`.
fn scanned_text(input: &Path) -> Result<String> {
    if input == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")
    } else {
        std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))
    }
}

async fn scan(
    store: &TemplateStore,
    template_id: &str,
    version: Option<u32>,
    input: &Path,
    out: &Output,
) -> Result<()> {
    let text = scanned_text(input)?;
    let version = store.resolve(template_id, version).await?;
    let fingerprints = store.fingerprints().get(template_id, version).await?;
    let findings = Scanner::new(&fingerprints).scan(&text);
    out.scan(template_id, version, text.len(), &findings)?;
    match findings.len() {
        0 => Ok(()),
        n => Err(LeaksFound(n).into()),
    }
}

/// Scans a text for each document of an ISV collection, by the fingerprints sealed with it at
/// ingestion; one report per document (named `isv:COLLECTION/DOCUMENT`, at its generation).
async fn scan_collection(
    config: &context::ContextConfig,
    name: &str,
    input: &Path,
    out: &Output,
) -> Result<()> {
    let text = scanned_text(input)?;
    let collection = promptseal::context::collection::CollectionId::new(
        promptseal::context::collection::Owner::Isv,
        name,
    )?;
    let mut leaks = 0;
    let documents = config
        .store
        .fingerprints(&collection, &config.fingerprints)
        .await?;
    if documents.is_empty() {
        out.done(&format!("{}: no documents to scan for", collection.path()))?;
    }
    for (doc, fingerprints) in documents {
        let findings = Scanner::new(&fingerprints).scan(&text);
        leaks += findings.len();
        out.scan(
            &format!("isv:{name}/{}", doc.name),
            doc.generation,
            text.len(),
            &findings,
        )?;
    }
    match leaks {
        0 => Ok(()),
        n => Err(LeaksFound(n).into()),
    }
}

/// One line of `scan --jsonl` input: the text and, optionally, which template version to scan
/// it for and an id of the caller's to echo (other fields, such as a transcript's, are ignored).
#[derive(serde::Deserialize)]
struct ScanLine {
    text: String,
    template: Option<String>,
    version: Option<u32>,
    id: Option<serde_json::Value>,
}

/// Why one line of `scan --jsonl` could not be scanned: a stable code and a message (which
/// quotes no text).
struct LineError(&'static str, String);

/// Scans JSON Lines, one verdict per line, fetching each template version's fingerprints once.
/// Lines that cannot be scanned get an error verdict and the rest go on; a store that cannot be
/// reached ends the run.
async fn scan_lines(
    store: &TemplateStore,
    template: Option<String>,
    version: Option<u32>,
    input: &Path,
) -> Result<()> {
    use std::io::BufRead;
    let reader: Box<dyn BufRead> = if input == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            std::fs::File::open(input).with_context(|| format!("reading {}", input.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut versions = std::collections::HashMap::new();
    let (mut leaks, mut failed) = (0, 0);
    for (n, line) in reader.lines().enumerate() {
        let line = line.context("reading the input")?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<ScanLine>(&line);
        let id = parsed.as_ref().ok().and_then(|l| l.id.clone());
        let verdict = match parsed {
            Err(e) => Err(LineError(
                "malformed_line",
                format!(
                    "not a JSON object with a \"text\" string ({:?} error at column {})",
                    e.classify(),
                    e.column()
                ),
            )),
            Ok(l) => match l.template.or_else(|| template.clone()) {
                None => Err(LineError(
                    "no_template",
                    "the line names no template and --template is not given".into(),
                )),
                Some(t) => {
                    let wanted = l.version.or(version);
                    scan_line(store, &mut versions, &t, wanted, &l.text).await?
                }
            },
        };
        let line_number = n + 1;
        let out = match verdict {
            Ok((template_id, version, bytes, findings)) => {
                leaks += findings.len();
                serde_json::json!({
                    "line": line_number, "id": id, "template_id": template_id,
                    "version": version, "bytes_scanned": bytes, "findings": findings,
                })
            }
            Err(LineError(code, message)) => {
                failed += 1;
                serde_json::json!({
                    "line": line_number, "id": id,
                    "error": { "code": code, "message": message },
                })
            }
        };
        println!("{out}");
    }
    if failed > 0 {
        anyhow::bail!("{failed} line(s) could not be scanned");
    }
    match leaks {
        0 => Ok(()),
        n => Err(LeaksFound(n).into()),
    }
}

type Verdict = (String, u32, usize, Vec<promptseal::leak::Finding>);

/// One text scanned for one template version (the active version looked up once per run, the
/// fingerprints kept by the store's cache). A template or version that does not exist is the
/// line's error; anything else ends the run.
async fn scan_line(
    store: &TemplateStore,
    versions: &mut std::collections::HashMap<(String, Option<u32>), u32>,
    template_id: &str,
    version: Option<u32>,
    text: &str,
) -> Result<Result<Verdict, LineError>> {
    use promptseal::store::fingerprints::FingerprintError;
    use promptseal::store::templates::TemplateStoreError;
    let wanted = (template_id.to_owned(), version);
    let resolved = match versions.get(&wanted) {
        Some(&v) => Ok(v),
        None => store.resolve(template_id, version).await,
    };
    let version = match resolved {
        Ok(v) => {
            versions.insert(wanted, v);
            v
        }
        Err(e @ (TemplateStoreError::NotFound(_) | TemplateStoreError::NoActiveVersion(_))) => {
            let code = match e {
                TemplateStoreError::NotFound(_) => "template_not_found",
                _ => "no_active_version",
            };
            return Ok(Err(LineError(code, e.to_string())));
        }
        Err(e) => return Err(e.into()),
    };
    let fingerprints = match store.fingerprints().get(template_id, version).await {
        Ok(fp) => fp,
        Err(e @ FingerprintError::Missing { .. }) => {
            return Ok(Err(LineError("fingerprints_missing", e.to_string())));
        }
        Err(e) => return Err(e.into()),
    };
    let findings = Scanner::new(&fingerprints).scan(text);
    Ok(Ok((template_id.to_owned(), version, text.len(), findings)))
}

/// `scan` found something: reported, then the exit status says so.
#[derive(Debug)]
struct LeaksFound(usize);

impl std::fmt::Display for LeaksFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} leaked span(s) found", self.0)
    }
}

impl std::error::Error for LeaksFound {}

async fn tenant(
    cmd: TenantCommand,
    registry: &TenantRegistry,
    sdk: &aws_config::SdkConfig,
    out: &Output,
) -> Result<()> {
    match cmd {
        TenantCommand::Put(put) => {
            let TenantPut {
                tenant_id,
                templates,
                payload_logging,
                retention_days,
                daily_tokens,
                daily_requests,
                export_bucket,
                export_prefix,
                export_kms_key,
                export_role,
                export_account,
                preview,
                context_key,
                context_function,
                clear_context,
            } = *put;
            let mut spec = TenantSpec {
                tenant_id,
                templates: templates.into_iter().collect::<BTreeSet<_>>(),
                payload_logging: PayloadLogging {
                    enabled: payload_logging,
                    retention_days,
                },
                quotas: Quotas {
                    daily_tokens,
                    daily_requests,
                },
                export: export_bucket.map(|bucket| ExportDestination {
                    bucket,
                    prefix: export_prefix,
                    account_id: export_account.unwrap_or_default(),
                    kms_key_id: export_kms_key,
                    role_arn: export_role,
                    external_id: None,
                }),
                preview,
                context: context_key.map(|key_arn| TenantContext {
                    key_arn,
                    function: context_function,
                }),
            };
            if spec.context.is_none() && !clear_context {
                spec.context = registry
                    .get(&spec.tenant_id)
                    .await?
                    .and_then(|t| t.spec.context);
            }
            if let (Some(context), Some(region)) = (&spec.context, sdk.region()) {
                context.check_region(region.as_ref())?;
            }
            out.tenant(&registry.put(&spec).await?)
        }
        TenantCommand::Get { tenant_id } => match registry.get(&tenant_id).await? {
            Some(t) => out.tenant(&t),
            None => anyhow::bail!("tenant {tenant_id:?} not found"),
        },
        TenantCommand::List => out.tenants(&registry.list().await?),
        TenantCommand::Suspend { tenant_id } => out.tenant(
            &registry
                .set_status(&tenant_id, TenantStatus::Suspended)
                .await?,
        ),
        TenantCommand::Resume { tenant_id } => out.tenant(
            &registry
                .set_status(&tenant_id, TenantStatus::Active)
                .await?,
        ),
    }
}

/// The caller's AWS identity (an ARN), recorded as a version's creator.
async fn caller_identity(sdk: &aws_config::SdkConfig) -> Result<String> {
    let me = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .context("finding the caller's AWS identity (or pass --created-by)")?;
    me.arn()
        .map(str::to_owned)
        .context("STS returned no ARN (pass --created-by)")
}
