//! A local stand-in for the Bedrock runtime API on loopback. It speaks the real Converse wire
//! protocol, ConverseStream's event stream (`stream`), and `InvokeModel` for the embedding models
//! (`embed`), so the real
//! `aws-sdk-bedrockruntime` client reaches it through `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`. Behaviour (obedient, throttling, failing, slow, fixed
//! replies) is set per model id through a small control API, and the requests each model received
//! can be read back, so concurrent tests using different model ids do not disturb each other.
//! Every answered call also gets a request id (the `x-amzn-RequestId` header) and, as Bedrock's
//! model invocation logging would write it, a `ModelInvocationLog` record that can be read back
//! per model.

pub mod converse;
pub mod embed;
pub mod stream;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures::StreamExt;
use serde_json::{Value, json};

use converse::{Behaviour, CacheUse, DEFAULT_CACHE_MIN_TOKENS, DEFAULT_CACHE_TTL_MS};

/// Requests kept per model for inspection.
const KEPT_REQUESTS: usize = 64;

#[derive(Default)]
struct Models {
    default: Behaviour,
    by_model: HashMap<String, Behaviour>,
    received: HashMap<String, VecDeque<Value>>,
    invocation_log: HashMap<String, VecDeque<Value>>,
    /// Cached prompt prefixes, per model, and when each expires.
    cache: HashMap<(String, String), Instant>,
}

/// Keeps the newest `KEPT_REQUESTS` values per model.
fn keep(kept: &mut HashMap<String, VecDeque<Value>>, model_id: &str, value: Value) {
    let kept = kept.entry(model_id.to_owned()).or_default();
    if kept.len() == KEPT_REQUESTS {
        kept.pop_front();
    }
    kept.push_back(value);
}

/// A fresh request id in Bedrock's form (a UUID).
fn request_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let state = RandomState::new();
    let hex = format!("{:016x}{:016x}", state.hash_one(n), state.hash_one(!n));
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

type Shared = Arc<RwLock<Models>>;

/// The stand-in's HTTP routes, with `default` as the behaviour of models not configured otherwise.
pub fn router(default: Behaviour) -> Router {
    let state: Shared = Arc::new(RwLock::new(Models {
        default,
        ..Models::default()
    }));
    Router::new()
        .route("/model/{model_id}/converse", post(converse_handler))
        .route(
            "/model/{model_id}/converse-stream",
            post(converse_stream_handler),
        )
        .route("/model/{model_id}/invoke", post(invoke_handler))
        .route("/_standin/models/{model_id}", put(set_behaviour))
        .route("/_standin/models/{model_id}/requests", get(requests))
        .route(
            "/_standin/models/{model_id}/invocation-log",
            get(invocation_log),
        )
        .route("/_standin/health", get(|| async { "ok" }))
        .with_state(state)
}

fn aws_error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    (
        status,
        [(HeaderName::from_static("x-amzn-errortype"), error_type)],
        Json(json!({ "message": message })),
    )
        .into_response()
}

/// What every model call goes through first: the request is kept for inspection, and the model's
/// behaviour (delay, throttling, failure) applied; then the body must be JSON.
async fn admit(
    models: &Shared,
    model_id: &str,
    body: &[u8],
) -> Result<(Value, Behaviour), Response> {
    let request = serde_json::from_slice::<Value>(body);
    let behaviour = {
        let mut models = models.write().expect("stand-in lock poisoned");
        if let Ok(request) = &request {
            keep(&mut models.received, model_id, request.clone());
        }
        models
            .by_model
            .get(model_id)
            .cloned()
            .unwrap_or_else(|| models.default.clone())
    };
    if behaviour.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(behaviour.delay_ms)).await;
    }
    if behaviour.throttle {
        return Err(aws_error(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ));
    }
    if behaviour.fail {
        return Err(aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "The model rejected the request.",
        ));
    }
    let request = request.map_err(|_| {
        aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "Malformed request body",
        )
    })?;
    Ok((request, behaviour))
}

/// A Converse or ConverseStream call up to its reply.
struct Answered {
    reply: converse::Reply,
    behaviour: Behaviour,
    latency_ms: u64,
    request_id: String,
}

/// Admits and answers one call, reads or writes its prompt prefix in the cache, and records it
/// in the invocation log as `operation`.
async fn answer(
    models: &Shared,
    model_id: &str,
    body: &[u8],
    operation: &str,
) -> Result<Answered, Response> {
    let started = Instant::now();
    let (request, behaviour) = admit(models, model_id, body).await?;
    let mut reply =
        converse::reply(&request, &behaviour).map_err(|converse::Invalid(message)| {
            aws_error(StatusCode::BAD_REQUEST, "ValidationException", &message)
        })?;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let request_id = request_id();
    let mut models = models.write().expect("stand-in lock poisoned");
    if let Some((prefix, tokens)) = converse::cache_prefix(&request)
        && tokens
            >= behaviour
                .cache_min_tokens
                .unwrap_or(DEFAULT_CACHE_MIN_TOKENS)
    {
        let now = Instant::now();
        let ttl = Duration::from_millis(behaviour.cache_ttl_ms.unwrap_or(DEFAULT_CACHE_TTL_MS));
        models.cache.retain(|_, expires| *expires > now);
        let key = (model_id.to_owned(), prefix);
        // A hit keeps the prefix another TTL; a miss writes it.
        reply.cache = Some(match models.cache.insert(key, now + ttl) {
            Some(_) => CacheUse::Read(tokens),
            None => CacheUse::Write(tokens),
        });
        reply.input_tokens = reply.input_tokens.saturating_sub(tokens);
    }
    let mut record = converse::invocation_log_record(
        &request_id,
        model_id,
        &request,
        &reply.to_json(latency_ms),
    );
    record["operation"] = json!(operation);
    keep(&mut models.invocation_log, model_id, record);
    Ok(Answered {
        reply,
        behaviour,
        latency_ms,
        request_id,
    })
}

async fn converse_handler(
    State(models): State<Shared>,
    Path(model_id): Path<String>,
    body: Bytes,
) -> Response {
    match answer(&models, &model_id, &body, "Converse").await {
        Ok(a) => (
            [(HeaderName::from_static("x-amzn-requestid"), a.request_id)],
            Json(a.reply.to_json(a.latency_ms)),
        )
            .into_response(),
        Err(refused) => refused,
    }
}

/// `ConverseStream`: the same reply as Converse's, sent as an event stream of deltas.
async fn converse_stream_handler(
    State(models): State<Shared>,
    Path(model_id): Path<String>,
    body: Bytes,
) -> Response {
    let a = match answer(&models, &model_id, &body, "ConverseStream").await {
        Ok(answered) => answered,
        Err(refused) => return refused,
    };
    let delay = Duration::from_millis(a.behaviour.delta_delay_ms);
    let frames = stream::messages(&a.reply, &a.behaviour, a.latency_ms);
    // A delta waits its turn; the frames around the text follow at once.
    let body = futures::stream::iter(frames).then(move |message| async move {
        if stream::is_delta(&message) && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, std::convert::Infallible>(Bytes::from(stream::encode(&message)))
    });
    (
        [
            (
                HeaderName::from_static("content-type"),
                "application/vnd.amazon.eventstream".to_owned(),
            ),
            (HeaderName::from_static("x-amzn-requestid"), a.request_id),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

/// `InvokeModel`: the embedding models, in their own formats.
async fn invoke_handler(
    State(models): State<Shared>,
    Path(model_id): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let (request, _) = match admit(&models, &model_id, &body).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    if !embed::is_embedding_model(&model_id) {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "The stand-in answers InvokeModel for embedding models only; use Converse.",
        );
    }
    match embed::invoke(&model_id, &request) {
        Ok(embedded) => {
            let latency = started.elapsed().as_millis().to_string();
            (
                [
                    (HeaderName::from_static("x-amzn-requestid"), request_id()),
                    (
                        HeaderName::from_static("x-amzn-bedrock-input-token-count"),
                        embedded.input_tokens.to_string(),
                    ),
                    (
                        HeaderName::from_static("x-amzn-bedrock-invocation-latency"),
                        latency,
                    ),
                ],
                Json(embedded.body),
            )
                .into_response()
        }
        Err(converse::Invalid(message)) => {
            aws_error(StatusCode::BAD_REQUEST, "ValidationException", &message)
        }
    }
}

async fn set_behaviour(
    State(models): State<Shared>,
    Path(model_id): Path<String>,
    Json(behaviour): Json<Behaviour>,
) -> StatusCode {
    models
        .write()
        .expect("stand-in lock poisoned")
        .by_model
        .insert(model_id, behaviour);
    StatusCode::NO_CONTENT
}

async fn requests(State(models): State<Shared>, Path(model_id): Path<String>) -> Json<Vec<Value>> {
    let models = models.read().expect("stand-in lock poisoned");
    Json(kept(&models.received, &model_id))
}

async fn invocation_log(
    State(models): State<Shared>,
    Path(model_id): Path<String>,
) -> Json<Vec<Value>> {
    let models = models.read().expect("stand-in lock poisoned");
    Json(kept(&models.invocation_log, &model_id))
}

fn kept(kept: &HashMap<String, VecDeque<Value>>, model_id: &str) -> Vec<Value> {
    kept.get(model_id)
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default()
}

/// A blocking client for a running stand-in at `endpoint` (`http://127.0.0.1:PORT`), for tests
/// and demos.
pub struct Control {
    endpoint: String,
}

impl Control {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
        }
    }

    fn model_url(&self, model_id: &str) -> String {
        let escaped: String = model_id
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        format!("{}/_standin/models/{escaped}", self.endpoint)
    }

    /// Sets how `model_id` behaves from now on.
    pub fn set_behaviour(&self, model_id: &str, behaviour: &Behaviour) -> Result<(), ureq::Error> {
        let body = serde_json::to_string(behaviour).expect("behaviour always serialises");
        ureq::put(&self.model_url(model_id))
            .header("content-type", "application/json")
            .send(&body)?;
        Ok(())
    }

    /// The Converse request bodies `model_id` received, oldest first.
    pub fn received(&self, model_id: &str) -> Result<Vec<Value>, ureq::Error> {
        self.get_list(model_id, "requests")
    }

    /// The `ModelInvocationLog` records of the calls `model_id` answered, oldest first.
    pub fn invocation_log(&self, model_id: &str) -> Result<Vec<Value>, ureq::Error> {
        self.get_list(model_id, "invocation-log")
    }

    fn get_list(&self, model_id: &str, what: &str) -> Result<Vec<Value>, ureq::Error> {
        let text = ureq::get(&format!("{}/{what}", self.model_url(model_id)))
            .call()?
            .body_mut()
            .read_to_string()?;
        Ok(serde_json::from_str(&text).expect("the stand-in answers JSON"))
    }
}
