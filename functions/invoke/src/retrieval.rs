//! Retrieval for a template version that declares it: retrieve-context (Lambda Invoke) finds the
//! chunks and returns them sealed; invoke opens them itself, each under the identity it was
//! sealed for (a tenant chunk only as the calling tenant's), keeps the best that fit the
//! version's character budget, and hands them to assembly: ISV chunks as ISV text, tenant chunks
//! as the tenant's context documents. Only chunk ids leave this module for logs and records.

use aws_sdk_lambda::primitives::Blob;
use promptseal::assembly::{ContextDocument, IsvContext};
use promptseal::context::collection::ChunkId;
use promptseal::context::retrieval::{
    ChunkRef, RetrievalSettings, RetrieveRequest, RetrieveResponse,
};
use promptseal::envelope::{Envelope, EnvelopeError};
use promptseal::store::context::{ChunkText, ContextStoreError, open_chunk};
use promptseal::tenant::TenantContext;
use zeroize::Zeroizing;

/// How long retrieve-context may take (a cold load of a large collection included), well inside
/// invoke's own timeout.
pub const RETRIEVAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(9);

/// How invoke reaches retrieve-context, and the key chunks are sealed under.
pub struct Retrieval {
    pub lambda: aws_sdk_lambda::Client,
    /// retrieve-context's name or ARN.
    pub function: String,
    pub chunks: Envelope,
}

#[derive(Debug, thiserror::Error)]
pub enum RetrievalError {
    #[error("the template version retrieves context, and this deployment has no retrieve-context")]
    NotConfigured,
    #[error("retrieve-context did not answer in time")]
    Timeout,
    #[error("retrieve-context could not be called")]
    Invoke(#[source] Box<aws_sdk_lambda::Error>),
    /// retrieve-context answered with an error of this code.
    #[error("retrieve-context refused the request: {0}")]
    Refused(String),
    #[error("retrieve-context answered with something other than chunk references")]
    Malformed,
    /// A chunk that does not open as this tenant's (or the ISV's) in its collection: moved,
    /// tampered with, or another tenant's.
    #[error("a retrieved chunk could not be opened")]
    Integrity(#[source] ContextStoreError),
    #[error("KMS is unavailable")]
    Kms(#[source] ContextStoreError),
    /// The tenant's own key no longer opens its chunks: disabled, deleted, or its policy
    /// withdrawn (the tenant's off-switch).
    #[error("the tenant's own context key refused to open its documents")]
    TenantKeyRefused(#[source] ContextStoreError),
    /// The tenant's own side failed: its retrieve-context (failing, slow, or answering what it
    /// may not: an ISV chunk, a collection the version does not declare, a chunk that does not
    /// open), or its own key failing to answer. Told apart from the ISV's own failures.
    #[error("the tenant's own retrieve-context or key failed")]
    TenantSide(#[source] Box<RetrievalError>),
}

impl RetrievalError {
    fn of_tenant(self) -> Self {
        Self::TenantSide(Box::new(self))
    }
}

/// The chunks to place, and their ids (`isv:kb/3f9c0a1b2c3d4e5f.2.17`) in rank order.
#[derive(Default)]
pub struct Retrieved {
    pub isv: Option<IsvContext>,
    pub tenant: Vec<ContextDocument>,
    pub ids: Vec<String>,
}

/// The query a version retrieves with: the value of its query variable (none: no retrieval).
pub fn query<'a>(
    settings: &RetrievalSettings,
    variables: &'a std::collections::BTreeMap<String, String>,
) -> Option<&'a str> {
    variables
        .get(&settings.query)
        .map(String::as_str)
        .filter(|q| !q.trim().is_empty())
}

/// Retrieves and opens the chunks for one request. A tenant that keeps its context at home
/// (`own.function`) has its collections searched by its own retrieve-context, the ISV's by the
/// ISV's, both at once; a tenant that brought its own key has its chunks opened through that key.
///
/// The scores a tenant's own function reports are the tenant's to choose: were they ranked
/// against the ISV's, which of its chunks survive would tell it how close the ISV's chunks are
/// to any query it likes. So when both are searched, neither ranking meets the other: the ISV's
/// chunks have the larger half of `k` and `max_chars`, the tenant's the other half.
pub async fn retrieve(
    retrieval: Option<&Retrieval>,
    settings: &RetrievalSettings,
    request: RetrieveRequest,
    own: Option<&TenantContext>,
) -> Result<Retrieved, RetrievalError> {
    let retrieval = retrieval.ok_or(RetrievalError::NotConfigured)?;
    let tenant_id = request.tenant_id.clone();
    let (isv, home) = match own.and_then(|c| c.function.as_deref()) {
        Some(function) => {
            let (isv, tenant): (Vec<_>, Vec<_>) =
                request.collections.iter().cloned().partition(|c| c.isv);
            let at_home = RetrieveRequest {
                collections: tenant,
                ..request.clone()
            };
            let isv = RetrieveRequest {
                collections: isv,
                ..request
            };
            (isv, Some((function, at_home)))
        }
        None => (request, None),
    };
    let (chunks, at_home) = tokio::try_join!(
        search(&retrieval.lambda, &retrieval.function, &isv, Caller::Isv),
        async {
            match &home {
                Some((function, request)) => {
                    search(&retrieval.lambda, function, request, Caller::Tenant)
                        .await
                        .map_err(RetrievalError::of_tenant)
                }
                None => Ok(Vec::new()),
            }
        }
    )?;
    // The tenant's own function answers for the tenant's collections, never the ISV's.
    if at_home.iter().any(|c| c.collection.isv) {
        return Err(RetrievalError::Malformed.of_tenant());
    }
    let searched_at_home = home.is_some();
    let (k, max_chars) = (settings.k as usize, settings.max_chars);
    let shares = match home {
        Some((_, home)) if !isv.collections.is_empty() && !home.collections.is_empty() => vec![
            (chunks, k.div_ceil(2), max_chars.div_ceil(2)),
            (at_home, k / 2, max_chars / 2),
        ],
        _ => vec![([chunks, at_home].concat(), k, max_chars)],
    };
    // The tenant's key, with no data key kept past this request: its off-switch works at once.
    let own_text = own.map(|c| retrieval.chunks.per_request(&c.key_arn));

    let mut retrieved = Retrieved::default();
    let mut isv_text = Zeroizing::new(String::new());
    for (mut chunks, k, mut budget) in shares {
        chunks.sort_by(|a, b| b.score.total_cmp(&a.score));
        for chunk in chunks.into_iter().take(k) {
            let key = match (chunk.collection.isv, &own_text) {
                (false, Some(own)) => own,
                _ => &retrieval.chunks,
            };
            let tenant_chunk = !chunk.collection.isv;
            let (id, text) = match open_ref(&chunk, settings, &tenant_id, key).await {
                Ok(opened) => opened,
                Err(RetrievalError::Kms(e)) if tenant_chunk && own.is_some() && refused(&e) => {
                    return Err(RetrievalError::TenantKeyRefused(e));
                }
                // What the tenant's own function answered, or its own key failing to answer.
                Err(e)
                    if tenant_chunk
                        && (searched_at_home
                            || (own.is_some() && matches!(e, RetrievalError::Kms(_)))) =>
                {
                    return Err(e.of_tenant());
                }
                Err(e) => return Err(e),
            };
            let body = Zeroizing::new(match text.section.is_empty() {
                true => text.text.clone(),
                false => format!("{}\n{}", text.section, text.text),
            });
            let reference = format!("{}/{id}", chunk.collection);
            if retrieved.ids.contains(&reference) {
                continue;
            }
            let size = body.chars().count();
            if size > budget {
                // The best chunks that fit: a long one is left out, a shorter one may still fit.
                continue;
            }
            budget -= size;
            if chunk.collection.isv {
                if !isv_text.is_empty() {
                    isv_text.push_str("\n\n");
                }
                isv_text.push_str(&body);
            } else {
                retrieved.tenant.push(ContextDocument {
                    id: reference.clone(),
                    text: body.to_string(),
                });
            }
            retrieved.ids.push(reference);
        }
    }
    if !isv_text.is_empty() {
        retrieved.isv = Some(IsvContext {
            text: isv_text,
            placement: settings.placement,
        });
    }
    Ok(retrieved)
}

/// Opens one chunk reference, if the version declares its collection: its id and text.
async fn open_ref(
    chunk: &ChunkRef,
    settings: &RetrievalSettings,
    tenant_id: &str,
    key: &Envelope,
) -> Result<(ChunkId, ChunkText), RetrievalError> {
    // Only what the version declares, whatever came back.
    if !settings.collections.contains(&chunk.collection) {
        return Err(RetrievalError::Malformed);
    }
    let (Some(id), Some(sealed)) = (chunk.id(), chunk.sealed.sealed()) else {
        return Err(RetrievalError::Malformed);
    };
    let collection = chunk
        .collection
        .resolve(tenant_id)
        .map_err(|_| RetrievalError::Malformed)?;
    let text = open_chunk(key, &collection, &id, &sealed)
        .await
        .map_err(|e| match e {
            ContextStoreError::Envelope(EnvelopeError::Kms { .. }) => RetrievalError::Kms(e),
            e => RetrievalError::Integrity(e),
        })?;
    Ok((id, text))
}

/// Whose retrieve-context answers.
#[derive(Clone, Copy)]
enum Caller {
    Isv,
    /// The tenant's own: its error codes are its to choose, and never reach the ISV's logs.
    Tenant,
}

/// One retrieve-context's answer: nothing asked for, nothing called.
async fn search(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    request: &RetrieveRequest,
    caller: Caller,
) -> Result<Vec<ChunkRef>, RetrievalError> {
    let refused = |body: &[u8]| match caller {
        Caller::Isv => RetrievalError::Refused(error_type(body)),
        Caller::Tenant => RetrievalError::Refused("tenant_function_error".to_owned()),
    };
    if request.collections.is_empty() {
        return Ok(Vec::new());
    }
    let payload = serde_json::to_vec(request).expect("a request always serialises");
    let call = lambda
        .invoke()
        .function_name(function)
        .payload(Blob::new(payload))
        .send();
    let out = tokio::time::timeout(RETRIEVAL_TIMEOUT, call)
        .await
        .map_err(|_| RetrievalError::Timeout)?;
    let body = match out {
        Ok(out) => {
            let body = out.payload.map(Blob::into_inner).unwrap_or_default();
            if out.function_error.is_some() {
                return Err(refused(&body));
            }
            body
        }
        // cargo-lambda's emulator answers a function's error with HTTP 500 and the error as the
        // body, where Lambda answers 200 with X-Amz-Function-Error.
        Err(e) => match e.raw_response().map(|r| r.body().bytes()) {
            Some(Some(body)) if e.raw_response().is_some_and(|r| r.status().as_u16() == 500) => {
                return Err(refused(body));
            }
            _ => return Err(RetrievalError::Invoke(Box::new(e.into()))),
        },
    };
    let response: RetrieveResponse =
        serde_json::from_slice(&body).map_err(|_| RetrievalError::Malformed)?;
    Ok(response.chunks)
}

/// Whether KMS refused the key itself (disabled, pending deletion, gone, or its policy no longer
/// lets invoke use it), as opposed to failing to answer.
fn refused(error: &ContextStoreError) -> bool {
    use aws_sdk_kms::error::ProvideErrorMetadata;
    let ContextStoreError::Envelope(EnvelopeError::Kms { source, .. }) = error else {
        return false;
    };
    matches!(
        source.code(),
        Some(
            "AccessDeniedException"
                | "DisabledException"
                | "KMSInvalidStateException"
                | "NotFoundException"
        )
    )
}

/// The `errorType` of a function error's body, or `unknown`.
fn error_type(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct FunctionError {
        #[serde(rename = "errorType")]
        error_type: String,
    }
    serde_json::from_slice::<FunctionError>(body)
        .ok()
        .map(|e| e.error_type)
        .filter(|t| t.len() <= 64 && t.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "unknown".to_owned())
}
