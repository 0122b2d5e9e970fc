//! A local stand-in for the Bedrock runtime API on loopback. It speaks the real Converse wire
//! protocol, so the real `aws-sdk-bedrockruntime` client reaches it through
//! `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`. Behaviour (obedient, throttling) is set per model id through
//! a small control API, so concurrent tests using different model ids do not disturb each other.

pub mod converse;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use converse::Behaviour;

#[derive(Default)]
struct Models {
    default: Behaviour,
    by_model: HashMap<String, Behaviour>,
}

type Shared = Arc<RwLock<Models>>;

/// The stand-in's HTTP routes, with `default` as the behaviour of models not configured otherwise.
pub fn router(default: Behaviour) -> Router {
    let state: Shared = Arc::new(RwLock::new(Models {
        default,
        by_model: HashMap::new(),
    }));
    Router::new()
        .route("/model/{model_id}/converse", post(converse_handler))
        .route("/_standin/models/{model_id}", put(set_behaviour))
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

async fn converse_handler(
    State(models): State<Shared>,
    Path(model_id): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let behaviour = {
        let models = models.read().expect("behaviour lock poisoned");
        models
            .by_model
            .get(&model_id)
            .copied()
            .unwrap_or(models.default)
    };
    if behaviour.throttle {
        return aws_error(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "Malformed request body",
        );
    };
    match converse::reply(&request, behaviour) {
        Ok(reply) => {
            let latency = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            Json(reply.to_json(latency)).into_response()
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
        .expect("behaviour lock poisoned")
        .by_model
        .insert(model_id, behaviour);
    StatusCode::NO_CONTENT
}

/// Sets how `model_id` behaves on a running stand-in at `endpoint` (`http://127.0.0.1:PORT`).
/// A blocking, dependency-free client for tests and demos.
pub fn set_model_behaviour(
    endpoint: &str,
    model_id: &str,
    behaviour: Behaviour,
) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let address = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let body = serde_json::to_string(&behaviour).expect("behaviour always serialises");
    let path: String = model_id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut stream = std::net::TcpStream::connect(address)?;
    write!(
        stream,
        "PUT /_standin/models/{path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    if response.starts_with("HTTP/1.1 204") {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "stand-in refused the behaviour change: {}",
            response.lines().next().unwrap_or_default()
        )))
    }
}
