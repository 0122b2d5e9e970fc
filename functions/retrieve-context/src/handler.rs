//! The handler: a `RetrieveRequest` from invoke (Lambda Invoke) in, a `RetrieveResponse` out.
//!
//! The tenant is the caller's: invoke takes it from API Gateway's authorizer, and a deployment in
//! a tenant's own account serves that tenant alone. A tenant's collections are always its own
//! (`tenant:NAME` means the calling tenant's `NAME`) and are searched through their own index,
//! never a shared one. ISV collections are searched only when the template version the tenant
//! uses declares them. A collection's vectors are searched in memory, where they stay while its
//! version is unchanged, or by S3 Vectors in the collection's own index.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use promptseal::context::collection::CollectionId;
use promptseal::context::embed::{EmbedError, Embedder, EmbeddingModel, Purpose};
use promptseal::context::retrieval::{
    ChunkRef, CollectionName, MAX_K, MAX_QUERY_CHARS, RetrieveRequest, RetrieveResponse,
    SealedChunk,
};
use promptseal::envelope::Envelope;
use promptseal::store::context::{
    CollectionState, ContextStore, ContextStoreError, LoadedCollection, VectorBackend,
};
use promptseal::store::templates::{TemplateCatalog, TemplateStoreError};
use promptseal::store::tenants::TenantRegistry;
use promptseal::template::VersionStatus;
use promptseal::tenant::{TenantError, TenantStatus};

/// Who may read what.
pub enum Access {
    /// The ISV's deployment: the registry says who the tenant is and which templates it uses,
    /// the template version which collections it retrieves from.
    Isv {
        tenants: TenantRegistry,
        templates: TemplateCatalog,
    },
    /// A deployment in one tenant's account: that tenant, its own collections.
    Tenant { tenant_id: String },
}

pub struct Deps {
    pub store: ContextStore,
    pub vectors: Envelope,
    pub bedrock: aws_sdk_bedrockruntime::Client,
    pub access: Access,
    /// Loaded collections, by collection, while their version holds.
    pub loaded: Mutex<HashMap<CollectionId, Arc<LoadedCollection>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("tenant is not registered")]
    TenantNotFound,
    #[error("tenant is suspended")]
    TenantSuspended,
    #[error("this deployment serves another tenant")]
    TenantForbidden,
    #[error("the tenant may not use this template")]
    TemplateForbidden,
    #[error("the template version does not exist or is retired")]
    TemplateNotFound,
    #[error("the tenant may not read collection {0}")]
    CollectionForbidden(CollectionName),
    #[error(transparent)]
    Store(#[from] ContextStoreError),
    #[error("the embedding model failed")]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Tenants(#[from] TenantError),
    #[error(transparent)]
    Templates(TemplateStoreError),
}

impl RetrieveError {
    /// The stable code invoke maps to its own errors (Lambda's `errorType`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::TenantNotFound => "tenant_not_found",
            Self::TenantSuspended => "tenant_suspended",
            Self::TenantForbidden => "tenant_forbidden",
            Self::TemplateForbidden => "template_forbidden",
            Self::TemplateNotFound => "template_not_found",
            Self::CollectionForbidden(_) => "collection_forbidden",
            Self::Store(e) => e.code(),
            Self::Embed(EmbedError::Model(_)) => "embedding_unavailable",
            Self::Embed(_) => "embedding_failed",
            Self::Tenants(_) | Self::Templates(_) => "store_unavailable",
        }
    }
}

impl From<RetrieveError> for lambda_runtime::Diagnostic {
    fn from(e: RetrieveError) -> Self {
        Self {
            error_type: e.code().to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// Serves one request.
pub async fn handle(
    deps: &Deps,
    request: RetrieveRequest,
) -> Result<RetrieveResponse, RetrieveError> {
    check(&request)?;
    authorize(&deps.access, &request).await?;
    let mut hits = Vec::new();
    let mut queries: HashMap<(String, u32), Vec<f32>> = HashMap::new();
    let mut query_tokens = None;
    for name in &request.collections {
        let id = name
            .resolve(&request.tenant_id)
            .map_err(|_| RetrieveError::BadRequest("a collection name is malformed"))?;
        let Some(searchable) = searchable(deps, &id).await? else {
            // Declared, but nothing ingested yet: nothing to find.
            continue;
        };
        let model = searchable.model();
        if !queries.contains_key(&model) {
            let embedder = Embedder::new(
                deps.bedrock.clone(),
                EmbeddingModel::new(&model.0, Some(model.1))?,
            );
            let embedded = embedder.embed(&[&request.query], Purpose::Query).await?;
            if let Some(n) = embedded.input_tokens {
                *query_tokens.get_or_insert(0) += n;
            }
            let vector = embedded.vectors.into_iter().next().unwrap_or_default();
            queries.insert(model.clone(), vector);
        }
        let (query, k, min_score) = (&queries[&model], request.k as usize, request.min_score);
        let found = match &searchable {
            Searchable::Loaded(loaded) => loaded.search(query, k, min_score),
            Searchable::Indexed(state) => {
                deps.store
                    .search_index(&id, state, query, k, min_score)
                    .await?
            }
        };
        hits.extend(
            found
                .into_iter()
                .map(|(chunk, score)| (score, name, id.clone(), chunk)),
        );
    }
    hits.sort_by(|a, b| b.0.total_cmp(&a.0));
    hits.truncate(request.k as usize);

    // One read per collection; a chunk deleted since its index was loaded is left out.
    let mut sealed: HashMap<(&CollectionId, _), _> = HashMap::new();
    let mut wanted: HashMap<&CollectionId, Vec<_>> = HashMap::new();
    for (_, _, id, chunk) in &hits {
        wanted.entry(id).or_default().push(*chunk);
    }
    for (id, ids) in wanted {
        let found = deps.store.sealed_chunks(id, &ids).await?;
        sealed.extend(
            ids.into_iter()
                .zip(found)
                .map(|(chunk, s)| ((id, chunk), s)),
        );
    }
    let chunks: Vec<ChunkRef> = hits
        .iter()
        .filter_map(|(score, name, id, chunk)| {
            let s = sealed.get(&(id, *chunk))?.as_ref()?;
            Some(ChunkRef {
                collection: (*name).clone(),
                chunk_id: chunk.to_string(),
                score: *score,
                sealed: SealedChunk::from(s),
            })
        })
        .collect();
    tracing::info!(
        tenant_id = %request.tenant_id,
        template_id = %request.template_id,
        version = request.version,
        collections = request.collections.len(),
        chunks = chunks.len(),
        "retrieved"
    );
    Ok(RetrieveResponse {
        chunks,
        query_tokens,
    })
}

fn check(request: &RetrieveRequest) -> Result<(), RetrieveError> {
    if request.query.trim().is_empty() {
        return Err(RetrieveError::BadRequest("the query is empty"));
    }
    if request.query.chars().count() > MAX_QUERY_CHARS {
        return Err(RetrieveError::BadRequest("the query is too long"));
    }
    if !(1..=MAX_K).contains(&request.k) {
        return Err(RetrieveError::BadRequest("k is out of range"));
    }
    if !(-1.0..=1.0).contains(&request.min_score) {
        return Err(RetrieveError::BadRequest("min_score is out of range"));
    }
    let mut distinct = request.collections.clone();
    distinct.sort();
    distinct.dedup();
    if distinct.is_empty() || distinct.len() > 8 || distinct.len() != request.collections.len() {
        return Err(RetrieveError::BadRequest(
            "name 1 to 8 distinct collections",
        ));
    }
    if !promptseal::template::is_id(&request.tenant_id) {
        return Err(RetrieveError::BadRequest("the tenant id is malformed"));
    }
    Ok(())
}

/// Whether the tenant may read every collection asked for.
async fn authorize(access: &Access, request: &RetrieveRequest) -> Result<(), RetrieveError> {
    match access {
        Access::Tenant { tenant_id } => {
            if *tenant_id != request.tenant_id {
                return Err(RetrieveError::TenantForbidden);
            }
            // The ISV's knowledge never lives in a tenant's account.
            match request.collections.iter().find(|c| c.isv) {
                Some(isv) => Err(RetrieveError::CollectionForbidden(isv.clone())),
                None => Ok(()),
            }
        }
        Access::Isv { tenants, templates } => {
            let tenant = tenants
                .get(&request.tenant_id)
                .await?
                .ok_or(RetrieveError::TenantNotFound)?;
            if tenant.status != TenantStatus::Active {
                return Err(RetrieveError::TenantSuspended);
            }
            if !tenant.may_use(&request.template_id) {
                return Err(RetrieveError::TemplateForbidden);
            }
            let version = match templates
                .version(&request.template_id, Some(request.version))
                .await
            {
                Ok(v) => v.meta,
                Err(
                    TemplateStoreError::NotFound(_) | TemplateStoreError::VersionNotFound { .. },
                ) => return Err(RetrieveError::TemplateNotFound),
                Err(e) => return Err(RetrieveError::Templates(e)),
            };
            if version.status == VersionStatus::Retired
                || (version.status == VersionStatus::Draft && !tenant.spec.preview)
            {
                return Err(RetrieveError::TemplateNotFound);
            }
            let declared = version
                .settings
                .retrieval
                .map(|r| r.collections)
                .unwrap_or_default();
            match request.collections.iter().find(|c| !declared.contains(c)) {
                Some(other) => Err(RetrieveError::CollectionForbidden(other.clone())),
                None => Ok(()),
            }
        }
    }
}

/// A collection ready to search.
enum Searchable {
    /// Its vectors, in memory.
    Loaded(Arc<LoadedCollection>),
    /// Its state: the vectors are in S3 Vectors.
    Indexed(CollectionState),
}

impl Searchable {
    /// The model the collection's vectors come from, and their size.
    fn model(&self) -> (String, u32) {
        match self {
            Self::Loaded(loaded) => (loaded.model.clone(), loaded.dimensions),
            Self::Indexed(state) => (state.model.clone(), state.dimensions),
        }
    }
}

/// The collection, ready to search: in memory, kept from an earlier request while its version
/// holds, loaded (and kept) otherwise; or its state, for a collection kept in S3 Vectors. `None`
/// for a collection with nothing ingested.
async fn searchable(deps: &Deps, id: &CollectionId) -> Result<Option<Searchable>, RetrieveError> {
    let state = deps.store.state(id).await?;
    // Nothing ingested yet, or being deleted: nothing to find.
    let Some(state) = state.filter(|s| !s.documents.is_empty() && !s.deleting) else {
        deps.loaded.lock().expect("cache lock").remove(id);
        return Ok(None);
    };
    if state.backend == VectorBackend::S3Vectors {
        return Ok(Some(Searchable::Indexed(state)));
    }
    let kept = deps.loaded.lock().expect("cache lock").get(id).cloned();
    // The same incarnation (a collection deleted and made again starts over) at the same version.
    if let Some(kept) =
        kept.filter(|k| k.incarnation == state.incarnation && k.version == state.version)
    {
        return Ok(Some(Searchable::Loaded(kept)));
    }
    let loaded = Arc::new(deps.store.load_state(id, &state, &deps.vectors).await?);
    deps.loaded
        .lock()
        .expect("cache lock")
        .insert(id.clone(), loaded.clone());
    Ok(Some(Searchable::Loaded(loaded)))
}
