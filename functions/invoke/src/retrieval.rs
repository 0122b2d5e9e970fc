//! Retrieval for a template version that declares it: retrieve-context (Lambda Invoke) finds the
//! chunks and returns them sealed; invoke opens them itself, each under the identity it was
//! sealed for (a tenant chunk only as the calling tenant's), keeps the best that fit the
//! version's character budget, and hands them to assembly: ISV chunks as ISV text, tenant chunks
//! as the tenant's context documents. Only chunk ids leave this module for logs and records.

use aws_sdk_lambda::primitives::Blob;
use promptseal::assembly::{ContextDocument, IsvContext};
use promptseal::context::retrieval::{RetrievalSettings, RetrieveRequest, RetrieveResponse};
use promptseal::envelope::{Envelope, EnvelopeError};
use promptseal::store::context::{ContextStoreError, open_chunk};
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

/// Retrieves and opens the chunks for one request.
pub async fn retrieve(
    retrieval: Option<&Retrieval>,
    settings: &RetrievalSettings,
    request: RetrieveRequest,
) -> Result<Retrieved, RetrievalError> {
    let retrieval = retrieval.ok_or(RetrievalError::NotConfigured)?;
    let tenant_id = request.tenant_id.clone();
    let payload = serde_json::to_vec(&request).expect("a request always serialises");
    let call = retrieval
        .lambda
        .invoke()
        .function_name(&retrieval.function)
        .payload(Blob::new(payload))
        .send();
    let out = tokio::time::timeout(RETRIEVAL_TIMEOUT, call)
        .await
        .map_err(|_| RetrievalError::Timeout)?;
    let body = match out {
        Ok(out) => {
            let body = out.payload.map(Blob::into_inner).unwrap_or_default();
            if out.function_error.is_some() {
                return Err(RetrievalError::Refused(error_type(&body)));
            }
            body
        }
        // cargo-lambda's emulator answers a function's error with HTTP 500 and the error as the
        // body, where Lambda answers 200 with X-Amz-Function-Error.
        Err(e) => match e.raw_response().map(|r| r.body().bytes()) {
            Some(Some(body)) if e.raw_response().is_some_and(|r| r.status().as_u16() == 500) => {
                return Err(RetrievalError::Refused(error_type(body)));
            }
            _ => return Err(RetrievalError::Invoke(Box::new(e.into()))),
        },
    };
    let response: RetrieveResponse =
        serde_json::from_slice(&body).map_err(|_| RetrievalError::Malformed)?;

    let mut retrieved = Retrieved::default();
    let mut isv_text = Zeroizing::new(String::new());
    let mut budget = settings.max_chars;
    for chunk in response.chunks.into_iter().take(settings.k as usize) {
        // Only what the version declares, whatever came back.
        if !settings.collections.contains(&chunk.collection) {
            return Err(RetrievalError::Malformed);
        }
        let (Some(id), Some(sealed)) = (chunk.id(), chunk.sealed.sealed()) else {
            return Err(RetrievalError::Malformed);
        };
        let collection = chunk
            .collection
            .resolve(&tenant_id)
            .map_err(|_| RetrievalError::Malformed)?;
        let text = open_chunk(&retrieval.chunks, &collection, &id, &sealed)
            .await
            .map_err(|e| match e {
                ContextStoreError::Envelope(EnvelopeError::Kms { .. }) => RetrievalError::Kms(e),
                e => RetrievalError::Integrity(e),
            })?;
        let body = Zeroizing::new(match text.section.is_empty() {
            true => text.text.clone(),
            false => format!("{}\n{}", text.section, text.text),
        });
        let size = body.chars().count();
        if size > budget {
            // The best chunks that fit: a long one is left out, a shorter one may still fit.
            continue;
        }
        budget -= size;
        let reference = format!("{}/{id}", chunk.collection);
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
    if !isv_text.is_empty() {
        retrieved.isv = Some(IsvContext {
            text: isv_text,
            placement: settings.placement,
        });
    }
    Ok(retrieved)
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
