//! `promptseal context`: ingest text and Markdown into collections of sealed, embedded chunks,
//! and list, show and delete them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use promptseal::context::chunk::{self, Chunk, ChunkBudget};
use promptseal::context::collection::{CollectionId, Owner};
use promptseal::context::document::{self, DocumentError};
use promptseal::context::embed::{DEFAULT_MODEL, Embedder, EmbeddingModel, Purpose};
use promptseal::envelope::Envelope;
use promptseal::invocation_logging::disallowed_destinations;
use promptseal::store::context::{ContextStore, IngestKeys, NewDocument, VectorBackend};
use promptseal::store::tenants::TenantRegistry;
use promptseal::tenant::{TenantContext, TenantError};
use serde::Serialize;

use crate::output::Output;

/// Chunks embedded between two progress updates (and held in memory per document anyway).
const EMBED_GROUP: usize = 16;

#[derive(Subcommand)]
pub enum ContextCommand {
    /// Read text and Markdown files (or directories of them), cut them into chunks, embed and
    /// seal each chunk, and store them in a collection. A file is stored under its path relative
    /// to --root; ingesting it again replaces its chunks, and an unchanged file is skipped, so
    /// an interrupted run is resumed by running it again. Files that cannot be read (not UTF-8,
    /// empty, over 4 MiB, another type) are reported and nothing is stored.
    Ingest {
        #[command(flatten)]
        collection: CollectionArgs,
        /// The embedding model (default: the collection's, or amazon.titan-embed-text-v2:0).
        #[arg(long, env = "EMBEDDING_MODEL")]
        model: Option<String>,
        /// Titan's vector size: 256, 512 or 1024 (default: the collection's, or 1024).
        #[arg(long)]
        dimensions: Option<u32>,
        /// Where a new collection keeps its vectors: `memory` (sealed in the vector bucket,
        /// searched in retrieve-context's memory; the default) or `s3-vectors` (an S3 Vectors
        /// index of its own, for collections too large for a Lambda's memory). An existing
        /// collection keeps its own.
        #[arg(long)]
        backend: Option<VectorBackend>,
        /// Documents are named by their path relative to this directory.
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Embed even though Bedrock model invocation logging would record the documents (the
        /// ISV's knowledge or a tenant's) in its logs.
        #[arg(long)]
        allow_invocation_logging: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List every collection, the ISV's and the tenants'.
    List,
    /// Show a collection and its documents.
    Show {
        #[command(flatten)]
        collection: CollectionArgs,
    },
    /// Delete one document of a collection, or the whole collection.
    Delete {
        #[command(flatten)]
        collection: CollectionArgs,
        /// The document to delete (its name, as `show` lists it); without it, the collection.
        #[arg(long)]
        document: Option<String>,
    },
}

#[derive(Args)]
pub struct CollectionArgs {
    /// The collection's name.
    #[arg(long)]
    collection: String,
    /// A collection of the ISV's own knowledge.
    #[arg(long, required_unless_present = "tenant", conflicts_with = "tenant")]
    isv: bool,
    /// A collection of this tenant's documents.
    #[arg(long)]
    tenant: Option<String>,
}

impl CollectionArgs {
    fn id(&self) -> Result<CollectionId> {
        let owner = match &self.tenant {
            Some(id) => Owner::Tenant(id.clone()),
            None => Owner::Isv,
        };
        Ok(CollectionId::new(owner, &self.collection)?)
    }
}

/// Where the context store lives, and the keys it seals under.
pub struct ContextConfig {
    pub store: ContextStore,
    pub text: Envelope,
    pub vectors: Envelope,
    pub fingerprints: Envelope,
    pub bedrock: aws_sdk_bedrockruntime::Client,
    /// Bedrock's control plane: where invocation logs go.
    pub bedrock_control: aws_sdk_bedrock::Client,
    pub tenants: TenantRegistry,
    /// Set in a tenant's own account (tenant-context.yaml): the one tenant whose documents this
    /// store keeps, under the stack's key, with no tenant registry beside it.
    pub hosted_tenant: Option<String>,
}

/// What happened to one document.
#[derive(Serialize)]
pub struct Ingested {
    pub name: String,
    /// `ingested` (new), `replaced` (changed) or `unchanged` (skipped).
    pub status: &'static str,
    pub chunks: u32,
    pub generation: u32,
}

pub async fn run(cmd: ContextCommand, config: &ContextConfig, out: &Output) -> Result<()> {
    match cmd {
        ContextCommand::Ingest {
            collection,
            model,
            dimensions,
            backend,
            root,
            files,
            allow_invocation_logging,
        } => {
            let collection = collection.id()?;
            let documents = prepare(&root, &files)?;
            if !allow_invocation_logging {
                check_invocation_logging(&config.bedrock_control).await?;
            }
            let done = ingest(config, &collection, model, dimensions, backend, documents).await?;
            out.ingested(&collection, &done)
        }
        ContextCommand::List => out.collections(&config.store.list().await?),
        ContextCommand::Show { collection } => {
            let (summary, documents) = config.store.show(&collection.id()?).await?;
            out.collection(&summary, &documents)
        }
        ContextCommand::Delete {
            collection,
            document,
        } => {
            let collection = collection.id()?;
            let message = match document {
                Some(name) => {
                    let doc = config.store.delete_document(&collection, &name).await?;
                    format!(
                        "{}: deleted {name} ({} chunks)",
                        collection.path(),
                        doc.chunks
                    )
                }
                None => {
                    let n = config.store.delete_collection(&collection).await?;
                    format!("{}: deleted, with {n} document(s)", collection.path())
                }
            };
            out.done(&message)
        }
    }
}

/// Refuses to embed while Bedrock model invocation logging would deliver the documents' text or
/// their embeddings anywhere (or while that cannot be read): the embedding calls carry them.
async fn check_invocation_logging(bedrock: &aws_sdk_bedrock::Client) -> Result<()> {
    let out = bedrock
        .get_model_invocation_logging_configuration()
        .send()
        .await
        .map_err(aws_sdk_bedrock::Error::from)
        .context(
            "logging_check_failed: the Bedrock invocation logging configuration could not be \
             read; nothing was stored (--allow-invocation-logging skips the check)",
        )?;
    let destinations = disallowed_destinations(out.logging_config(), &[], true);
    if !destinations.is_empty() {
        bail!(
            "invocation_logging_enabled: Bedrock model invocation logging would record the \
             documents in {}; nothing was stored (turn off text and embedding delivery, or pass \
             --allow-invocation-logging)",
            destinations.join(", ")
        );
    }
    Ok(())
}

/// A file read and cut into chunks, ready to embed.
struct Prepared {
    name: String,
    text: String,
    chunks: Vec<Chunk>,
}

async fn ingest(
    config: &ContextConfig,
    collection: &CollectionId,
    model: Option<String>,
    dimensions: Option<u32>,
    backend: Option<VectorBackend>,
    documents: Vec<Prepared>,
) -> Result<Vec<Ingested>> {
    let own_key = text_key(config, &collection.owner).await?;
    let own_text = own_key.as_deref().map(|key| config.text.per_request(key));
    let state = config.store.state(collection).await?;
    // The collection's model and size unless told otherwise; a model named without a size has
    // its own default size.
    let model = match (model, &state) {
        (Some(model), _) => EmbeddingModel::new(&model, dimensions)?,
        (None, Some(state)) => {
            EmbeddingModel::new(&state.model, dimensions.or(Some(state.dimensions)))?
        }
        (None, None) => EmbeddingModel::new(DEFAULT_MODEL, dimensions)?,
    };
    if let Some(state) = &state {
        state.accepts(collection, &model, backend, own_key.as_deref())?;
    }

    // What is new or changed (an unchanged file whose generation the collection lists is done).
    let mut todo = Vec::new();
    let mut done = Vec::new();
    for doc in documents {
        let stored = config.store.document(collection, &doc.name).await?;
        match stored {
            Some(s)
                if s.sha256 == document::content_hash(&doc.text)
                    && state.as_ref().is_some_and(|state| state.lists(&s)) =>
            {
                done.push(Ingested {
                    name: doc.name,
                    status: "unchanged",
                    chunks: s.chunks,
                    generation: s.generation,
                });
            }
            _ => todo.push(doc),
        }
    }

    let total: usize = todo.iter().map(|d| d.chunks.len()).sum();
    let progress = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{msg:30!} [{bar:30}] {pos}/{len} chunks ({eta} left)")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let embedder = Embedder::new(config.bedrock.clone(), model.clone());
    for doc in todo {
        progress.set_message(doc.name.clone());
        let mut vectors = Vec::with_capacity(doc.chunks.len());
        for group in doc.chunks.chunks(EMBED_GROUP) {
            let texts: Vec<&str> = group.iter().map(|c| c.text.as_str()).collect();
            let embedded = embedder
                .embed(&texts, Purpose::Document)
                .await
                .with_context(|| format!("embedding {}", doc.name))?;
            vectors.extend(embedded.vectors);
            progress.inc(group.len() as u64);
        }
        let stored = config
            .store
            .put_document(
                collection,
                &model,
                backend,
                NewDocument {
                    name: &doc.name,
                    sha256: &document::content_hash(&doc.text),
                    bytes: doc.text.len() as u64,
                    chunks: &doc.chunks,
                    vectors: &vectors,
                },
                IngestKeys {
                    text: own_text.as_ref().unwrap_or(&config.text),
                    tenant_key: own_key.as_deref(),
                    vectors: &config.vectors,
                    fingerprints: &config.fingerprints,
                },
            )
            .await
            .with_context(|| format!("storing {}", doc.name))?;
        done.push(Ingested {
            name: doc.name,
            status: if stored.generation == 1 {
                "ingested"
            } else {
                "replaced"
            },
            chunks: stored.chunks,
            generation: stored.generation,
        });
    }
    progress.finish_and_clear();
    Ok(done)
}

/// The tenant's own key its chunk text is sealed under, if it brought one; refuses an owner
/// whose documents do not belong in this store.
async fn text_key(config: &ContextConfig, owner: &Owner) -> Result<Option<String>> {
    if let Some(hosted) = &config.hosted_tenant {
        // A tenant's own account has no tenant registry. Where there is one, this is the ISV's
        // store, and a stray HOSTED_TENANT_ID would seal a tenant's documents under the ISV's
        // key, past the tenant's own key or home.
        match config.tenants.get(hosted).await {
            Err(TenantError::Dynamo(e))
                if matches!(
                    *e.source,
                    aws_sdk_dynamodb::Error::ResourceNotFoundException(_)
                ) => {}
            Err(e) => return Err(e.into()),
            Ok(_) => bail!(
                "hosted_tenant_with_registry: HOSTED_TENANT_ID is set, but this account keeps a \
                 tenant registry: this is the ISV's store; unset HOSTED_TENANT_ID"
            ),
        }
    }
    match (owner, &config.hosted_tenant) {
        (Owner::Isv, None) => Ok(None),
        (Owner::Isv, Some(hosted)) => bail!(
            "collection_forbidden: this is tenant {hosted:?}'s own context store; the ISV's \
             knowledge is not kept here"
        ),
        // The stack's key is the tenant's own.
        (Owner::Tenant(id), Some(hosted)) if id == hosted => Ok(None),
        (Owner::Tenant(id), Some(hosted)) => {
            bail!("tenant_forbidden: this is tenant {hosted:?}'s own context store, not {id:?}'s")
        }
        (Owner::Tenant(id), None) => {
            let tenant =
                config.tenants.get(id).await?.with_context(|| {
                    format!("tenant_not_found: tenant {id:?} is not registered")
                })?;
            match tenant.spec.context {
                Some(TenantContext {
                    function: Some(function),
                    ..
                }) => bail!(
                    "context_kept_by_tenant: tenant {id:?} keeps its documents in its own \
                     account ({function}); they are ingested there, with HOSTED_TENANT_ID set"
                ),
                Some(own) => Ok(Some(own.key_arn)),
                None => Ok(None),
            }
        }
    }
}

/// Reads every file (directories: their text and Markdown files, recursively), named relative to
/// `root`. Any file refused refuses the run, before anything is embedded or stored.
fn prepare(root: &Path, files: &[PathBuf]) -> Result<Vec<Prepared>> {
    let root = root
        .canonicalize()
        .with_context(|| format!("--root {}", root.display()))?;
    let mut paths = Vec::new();
    for file in files {
        expand(file, &mut paths)?;
    }
    let mut refused = Vec::new();
    let mut prepared: Vec<Prepared> = Vec::new();
    for path in paths {
        let name = match name_in(&root, &path) {
            Ok(name) => name,
            Err(message) => {
                refused.push(format!("outside_root: {message}"));
                continue;
            }
        };
        if prepared.iter().any(|p| p.name == name) {
            continue;
        }
        match document::read(&path) {
            Err(e) => refused.push(format!("{}: {e}", e.code())),
            Ok(doc) => {
                let chunks = chunk::split(&doc.text, ChunkBudget::default());
                if chunks.is_empty() {
                    let e = DocumentError::Empty {
                        path: path.display().to_string(),
                    };
                    refused.push(format!("{}: {e}", e.code()));
                    continue;
                }
                prepared.push(Prepared {
                    name,
                    text: doc.text,
                    chunks,
                });
            }
        }
    }
    if !refused.is_empty() {
        for line in &refused {
            eprintln!("refused {line}");
        }
        bail!(
            "{} file(s) refused; nothing was stored (fix or leave them out and run again)",
            refused.len()
        );
    }
    Ok(prepared)
}

/// A file, or every file under a directory (sorted, so runs are repeatable).
fn expand(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !path.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    let mut entries = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("reading {}", path.display()))?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            expand(&entry, out)?;
        } else if document::is_supported(&entry) {
            out.push(entry);
        }
    }
    Ok(())
}

/// `path` relative to `root`, with `/` between parts.
fn name_in(root: &Path, path: &Path) -> Result<String, String> {
    let full = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let relative = full
        .strip_prefix(root)
        .map_err(|_| format!("{} is not under --root {}", path.display(), root.display()))?;
    let parts: Option<Vec<&str>> = relative.iter().map(|p| p.to_str()).collect();
    parts
        .map(|p| p.join("/"))
        .filter(|name| !name.is_empty() && name.len() <= 1024)
        .ok_or_else(|| format!("{}: the name is not UTF-8 or too long", path.display()))
}
