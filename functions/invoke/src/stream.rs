//! The streamed endpoint, `POST /v1/invoke/stream`: the same request as `/v1/invoke` (the same
//! identity, tenant rules, logging check, quota and assembly), answered as Server-Sent Events from
//! Bedrock's ConverseStream through the streaming leak guard:
//!
//! - `event: delta` with `{"text": ...}`, as the guard releases text;
//! - `event: done` with the reply's summary (stop reason, usage, guard report, request id), last;
//! - `event: error` with `{"error": {"code", "message"}, "request_id"}`, last, when the stream
//!   fails after its first byte.
//!
//! The response itself (status and headers) goes out only with the first text the guard
//! releases: anything that fails before that, the model's stream included, is answered with the
//! buffered endpoint's HTTP error. The tokens are metered and an opted-in tenant's payload record
//! written before the stream ends, so a function frozen after its response loses neither.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use lambda_http::http::header;
use lambda_http::{Error, Request, RequestExt, Response};
use lambda_runtime::streaming::{Body, Sender};
use promptseal::leak::{StreamGuard, Withheld};
use promptseal::records::{RecordPrompt, TokenUsage};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::converse::{self, StreamEnd, Streamed};
use crate::error::InvokeError;
use crate::handler::{
    Deps, Outcome, Settled, admit, audit, model_timeout, prepare, release, settle, summary,
};

/// Longest wait for the client to take one event.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The function's name in the audit line and the metrics.
const FUNCTION: &str = "invoke-stream";

/// Answers one request: an HTTP error, or a stream of events (the work goes on in a task of its
/// own, which writes the events, meters the call and ends the stream).
pub async fn handle(deps: &'static Deps, request: Request) -> Result<Response<Body>, Error> {
    let request_id = request
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let (sender, body) = Body::channel();
    let (head, opened) = oneshot::channel();
    tokio::spawn(run(deps, request, request_id.clone(), sender, head));
    Ok(match opened.await {
        Ok(Ok(())) => Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(body)
            .expect("status and headers are valid"),
        Ok(Err(e)) => e.to_response(&request_id),
        // The task ended without a word: it panicked.
        Err(_) => {
            InvokeError::ModelStream("the stream's task ended early").to_response(&request_id)
        }
    })
}

/// Where the stream's events go, and whether the response has gone out yet.
struct Client {
    sender: Sender,
    /// Until the first event: how the response is opened, or refused with an HTTP error.
    head: Option<oneshot::Sender<Result<(), InvokeError>>>,
    /// The client went away: the call is still metered and recorded.
    gone: bool,
    /// The last event (`done` or `error`) was sent.
    ended: bool,
    started: Instant,
}

impl Client {
    /// Sends one event, opening the response first if it is the first.
    async fn send(&mut self, outcome: &mut Outcome, name: &str, data: &Value) {
        if let Some(head) = self.head.take() {
            outcome.first_byte = Some(self.started.elapsed());
            self.gone = head.send(Ok(())).is_err();
        }
        if self.gone || self.ended {
            return;
        }
        self.ended = matches!(name, "done" | "error");
        let event = format!("event: {name}\ndata: {data}\n\n");
        // A client that stops reading is let go, so that it cannot hold the task (and with it
        // the metering and the record) until the function's deadline.
        let sent = tokio::time::timeout(SEND_TIMEOUT, self.sender.send_data(Bytes::from(event)));
        self.gone = !matches!(sent.await, Ok(Ok(())));
    }

    async fn text(&mut self, outcome: &mut Outcome, text: String) {
        if !text.is_empty() {
            self.send(outcome, "delta", &json!({ "text": text })).await;
        }
    }

    /// Ends the request with `error`: an HTTP error before the first byte, an `error` event
    /// after it (unless the stream has ended already).
    async fn fail(&mut self, outcome: &mut Outcome, error: InvokeError, request_id: &str) {
        match self.head.take() {
            Some(head) => {
                let _ = head.send(Err(error));
            }
            None => self.send(outcome, "error", &error.body(request_id)).await,
        }
    }
}

/// The whole request, in the task that owns the stream.
async fn run(
    deps: &'static Deps,
    request: Request,
    request_id: String,
    sender: Sender,
    head: oneshot::Sender<Result<(), InvokeError>>,
) {
    let started = Instant::now();
    let mut outcome = Outcome::default();
    let mut client = Client {
        sender,
        head: Some(head),
        gone: false,
        ended: false,
        started,
    };
    let result = answer(deps, &request, &request_id, &mut client, &mut outcome).await;
    audit(
        FUNCTION,
        &outcome,
        result.as_ref().err(),
        &request_id,
        started.elapsed(),
    );
    if let Err(e) = result {
        client.fail(&mut outcome, e, &request_id).await;
    }
    // Dropping the sender ends the stream, after the metering and the record.
}

/// Admits, prepares, streams the reply through the guard, and settles: the error that ends the
/// request, if any.
async fn answer(
    deps: &Deps,
    request: &Request,
    request_id: &str,
    client: &mut Client,
    outcome: &mut Outcome,
) -> Result<(), InvokeError> {
    let started_at = SystemTime::now();
    let admitted = admit(deps, request, outcome).await?;
    let meta = &admitted.stored.meta;
    let limits = admitted.limits;
    let terms = admitted.terms();
    let deadline = Instant::now() + model_timeout(limits.timeout, limits.deadline);
    let prepared = match prepare(
        deps,
        &admitted.who,
        &admitted.stored,
        &admitted.req,
        request_id,
        terms.context,
    )
    .await
    {
        Ok(prepared) => prepared,
        Err(e) => {
            release(deps, &admitted, &e).await;
            return Err(e);
        }
    };
    outcome.retrieved = prepared.retrieved.clone();
    let prompt = terms
        .record
        .then(|| RecordPrompt::of(&prepared.assembled, &meta.template_id, meta.version));
    let mut model =
        match converse::stream(&deps.bedrock, prepared.call(meta, limits), left(deadline)).await {
            Ok(model) => model,
            Err(e) => {
                release(deps, &admitted, &e).await;
                return Err(e);
            }
        };
    let model_request_id = model
        .model_request_id
        .clone()
        .unwrap_or_else(|| request_id.to_owned());

    let scanner = prepared.scanner();
    let mut guard = StreamGuard::new(&scanner, prepared.policy());
    // With `block`, once the guard stops the stream, the rest is read only for its usage.
    let mut withheld = false;
    let ended = loop {
        let piece = match tokio::time::timeout(left(deadline), model.next()).await {
            Ok(Ok(piece)) => piece,
            Ok(Err(e)) => break Err(e),
            Err(_) => break Err(InvokeError::ModelTimeout),
        };
        match piece {
            Streamed::Text(_) if withheld => {}
            Streamed::Text(text) => match guard.push(&text) {
                Ok(released) => client.text(outcome, released).await,
                // After the first byte, the client is told at once.
                Err(Withheld) => {
                    withheld = true;
                    if client.head.is_none() {
                        client
                            .fail(outcome, InvokeError::OutputWithheld, request_id)
                            .await;
                    }
                }
            },
            Streamed::End(end) => break Ok(end),
        }
    };
    let verdict = guard.finish();
    outcome.guard = Some(verdict.report.clone());
    // What ends the request: a withheld reply first (whatever else happened: the probing alarm
    // counts it), then the guardrail's intervention, then a stream the model broke off. A broken
    // stream has no usage to meter, but the text the client got is kept in the record.
    let (failure, stop_reason, usage, output) = match ended {
        Ok(StreamEnd {
            stop_reason,
            usage,
            guardrail,
        }) => {
            let failure = match (withheld, verdict.rest, guardrail) {
                (true, _, _) | (false, Err(Withheld), _) => Some(InvokeError::OutputWithheld),
                (false, Ok(_), Some(at)) => Some(InvokeError::GuardrailIntervened(at)),
                (false, Ok(rest), None) => {
                    client.text(outcome, rest).await;
                    None
                }
            };
            (failure, stop_reason, usage, verdict.guarded.to_string())
        }
        Err(broken) => {
            let failure = if withheld {
                InvokeError::OutputWithheld
            } else {
                broken
            };
            let output = if withheld {
                String::new()
            } else {
                verdict.released.to_string()
            };
            let stop_reason = failure.code().as_str().to_owned();
            (Some(failure), stop_reason, TokenUsage::default(), output)
        }
    };
    outcome.usage = usage;
    if failure.is_none() {
        let done = summary(
            request_id,
            meta,
            &stop_reason,
            usage,
            verdict.report.clone(),
        );
        let done = serde_json::to_value(done).expect("the summary always serialises");
        client.send(outcome, "done", &done).await;
    }
    settle(
        deps,
        &admitted,
        Settled {
            model_request_id,
            started_at,
            usage,
            stop_reason,
            output,
            guard: verdict.report,
            metadata: prepared.metadata.clone(),
            prompt,
            retrieved: &prepared.retrieved,
        },
    )
    .await;
    failure.map_or(Ok(()), Err)
}

/// The time left before `deadline`.
fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
