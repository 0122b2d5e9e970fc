//! One Lambda API endpoint for several functions, as a region's Lambda is: `Invoke` by the name
//! or ARN a function is deployed under, each forwarded to the cargo-lambda emulator running it
//! (which answers only to `_`, or to a binary name of this workspace), or answered as a test
//! says: a function that misbehaves on purpose. Any other name gets Lambda's
//! `ResourceNotFoundException`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::oneshot;

/// What answers an `Invoke` of one function.
#[derive(Clone)]
pub enum Route {
    /// The cargo-lambda emulator at this endpoint, running the function.
    Emulator(String),
    /// This answer, as Lambda gives a function's: with `X-Amz-Function-Error: Unhandled` when
    /// `error`.
    Answer { error: bool, payload: Value },
}

/// Serves on a free loopback port until dropped.
pub struct LambdaEndpoint {
    port: u16,
    routes: Routes,
    _stop: oneshot::Sender<()>,
}

type Routes = Arc<Mutex<HashMap<String, Route>>>;

impl LambdaEndpoint {
    /// `functions`: (the name or ARN clients invoke, the endpoint of the emulator running it).
    pub fn start(functions: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let routes: Routes = Arc::new(Mutex::new(
            functions
                .into_iter()
                .map(|(name, endpoint)| (name, Route::Emulator(endpoint)))
                .collect(),
        ));
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = routes.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Its own thread and runtime: it outlives no test, and drops outside any async context.
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let app = Router::new()
                    .route("/2015-03-31/functions/{name}/invocations", post(forward))
                    .with_state(routes.clone());
                let listener = tokio::net::TcpListener::from_std(listener)?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
            })
        });
        Ok(Self {
            port,
            routes: served,
            _stop: stop,
        })
    }

    /// From now on, `name` is answered by `route`.
    pub fn route(&self, name: &str, route: Route) {
        self.routes
            .lock()
            .expect("routes lock poisoned")
            .insert(name.to_owned(), route);
    }

    /// For `AWS_ENDPOINT_URL_LAMBDA`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

async fn forward(State(routes): State<Routes>, Path(name): Path<String>, body: Bytes) -> Response {
    let route = routes
        .lock()
        .expect("routes lock poisoned")
        .get(&name)
        .cloned();
    let emulator = match route {
        Some(Route::Emulator(emulator)) => emulator,
        Some(Route::Answer { error, payload }) => {
            let payload = payload.to_string().into_bytes();
            return match error {
                true => function_error(payload),
                false => (StatusCode::OK, payload).into_response(),
            };
        }
        None => {
            let body = serde_json::json!({ "Type": "User", "Message": format!("Function not found: {name}") });
            return (
                StatusCode::NOT_FOUND,
                [("x-amzn-errortype", "ResourceNotFoundException")],
                body.to_string(),
            )
                .into_response();
        }
    };
    let url = format!("{emulator}/2015-03-31/functions/_/invocations");
    let answer = tokio::task::spawn_blocking(move || -> Result<(u16, Option<String>, Vec<u8>)> {
        let mut response = ureq::post(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .send(&body[..])?;
        let error = response
            .headers()
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let status = response.status().as_u16();
        Ok((status, error, response.body_mut().read_to_vec()?))
    })
    .await;
    match answer {
        // The emulator answers a function's error with HTTP 500; Lambda with 200 and
        // X-Amz-Function-Error, as here.
        Ok(Ok((500, None, body))) => function_error(body),
        Ok(Ok((status, error, body))) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = (status, body).into_response();
            if let Some(error) = error.and_then(|e| e.parse().ok()) {
                response.headers_mut().insert("x-amz-function-error", error);
            }
            response
        }
        Ok(Err(e)) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// A function's error as Lambda answers it: 200, `X-Amz-Function-Error: Unhandled`, the error.
fn function_error(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [("x-amz-function-error", "Unhandled")],
        body,
    )
        .into_response()
}
