//! The handler: an API Gateway request in, the model's answer (or a mapped error) out. Order
//! matters: identity, body, tenant and entitlement, quota, template metadata and request checks,
//! then the logging check, and only then is the template decrypted. The reply goes out only
//! through the output leak guard.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_http::http::header;
use lambda_http::{Body, Request, RequestExt, Response};
use promptseal::assembly::{Assembled, Turn, assemble};
use promptseal::context::retrieval::RetrieveRequest;
use promptseal::leak::{Fingerprints, KnownText, LeakAction, LeakPolicy, LeakReport, Scanner};
use promptseal::metadata::RequestMetadata;
use promptseal::records::{
    Exchange, PayloadRecord, RecordPrompt, Source, TokenUsage, timestamp_micros,
};
use promptseal::render::{Renderer, values_after};
use promptseal::store::records::{PayloadStore, Written};
use promptseal::store::templates::{StoredVersion, TemplateStore};
use promptseal::store::tenants::TenantRegistry;
use promptseal::store::usage::{UsageLedger, today};
use promptseal::telemetry::{MetricRecord, Unit};
use promptseal::template::{CacheLayout, Role, VersionMeta, VersionStatus, check_variables};
use promptseal::tenant::{Tenant, TenantContext, TenantStatus};
use serde_json::json;
use zeroize::Zeroizing;

use crate::api::{self, InvokeRequest, InvokeResponse, ReplySummary, Usage};
use crate::config::Config;
use crate::converse::{self, ModelCall, ModelReply};
use crate::error::InvokeError;
use crate::identity::{Caller, caller};
use crate::logging_check::LoggingCheck;
use crate::retrieval::{self, Retrieval, Retrieved};

/// Everything the handler needs, built once per cold start.
pub struct Deps {
    pub config: Config,
    pub templates: TemplateStore,
    pub tenants: TenantRegistry,
    pub usage: UsageLedger,
    pub records: PayloadStore,
    pub logging: LoggingCheck,
    pub bedrock: aws_sdk_bedrockruntime::Client,
    pub renderer: Renderer,
    /// retrieve-context and the chunk key, for versions that retrieve context.
    pub retrieval: Option<Retrieval>,
}

/// What one request did, for the audit line and the metrics.
#[derive(Default)]
pub struct Outcome {
    caller: Option<Caller>,
    template: Option<(String, u32)>,
    model_id: Option<String>,
    pub usage: TokenUsage,
    pub guard: Option<LeakReport>,
    /// The retrieved chunks placed in the prompt, by id.
    pub retrieved: Vec<String>,
    /// Age of the logging check the request relied on.
    logging_check_age: Option<Duration>,
    /// For a streamed reply: when its first byte went out, after the request began.
    pub first_byte: Option<Duration>,
}

/// What one model call may use: the checked inference settings and the time it may take.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub max_tokens: u32,
    pub temperature: f32,
    /// The configured model timeout.
    pub timeout: Duration,
    /// The function's deadline, which the model call must end well before.
    pub deadline: Option<SystemTime>,
}

/// Time kept after the model call for the guard, the ledger and the payload record.
pub const DEADLINE_RESERVE: Duration = Duration::from_secs(2);

/// The configured model timeout, cut so that the call ends `DEADLINE_RESERVE` before the
/// function's deadline, so the function never runs out of time with the model's answer (already
/// paid for) unmetered, and answers `model_timeout` before API Gateway gives up on it.
pub fn model_timeout(configured: Duration, deadline: Option<SystemTime>) -> Duration {
    // A deadline already past while the function runs is no real one (Lambda sends epoch
    // milliseconds; cargo-lambda's emulator does not): the configured timeout applies.
    match deadline.and_then(|d| d.duration_since(SystemTime::now()).ok()) {
        None => configured,
        Some(left) => configured.min(left.saturating_sub(DEADLINE_RESERVE)),
    }
}

/// The model's reply after the output leak guard.
pub struct Answer {
    pub reply: ModelReply,
    pub guard: LeakReport,
    /// Whose request it was, as sent to Bedrock.
    pub metadata: RequestMetadata,
    /// The prompt as a payload record keeps it, when one is to be written.
    pub prompt: Option<RecordPrompt>,
    /// The retrieved chunks placed in the prompt, by id.
    pub retrieved: Vec<String>,
}

pub async fn handle(deps: &Deps, request: Request) -> Result<Response<Body>, lambda_http::Error> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let request_id = request
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let mut outcome = Outcome::default();
    let result = invoke(deps, &request, &request_id, started_at, &mut outcome).await;
    let latency = started.elapsed();
    let error = result.as_ref().err();
    audit("invoke", &outcome, error, &request_id, latency);
    Ok(match result {
        Ok(response) => json_response(&response),
        Err(e) => e.to_response(&request_id),
    })
}

/// A request that passed every check before the model, with its day's request reserved.
pub struct Admitted {
    pub who: Caller,
    pub req: InvokeRequest,
    pub tenant: Tenant,
    /// One day for both the quota and the ledger, even if the call spans UTC midnight.
    pub day: String,
    pub stored: StoredVersion,
    pub limits: CallLimits,
}

impl Admitted {
    pub fn terms(&self) -> TenantTerms<'_> {
        TenantTerms {
            record: self.tenant.spec.payload_logging.enabled,
            context: self.tenant.spec.context.as_ref(),
        }
    }
}

/// Everything before the model: identity, body, tenant and entitlement, the version and the
/// request checked against it, the logging check, and the day's request reserved. The same for
/// the buffered and the streamed endpoint.
pub async fn admit(
    deps: &Deps,
    request: &Request,
    outcome: &mut Outcome,
) -> Result<Admitted, InvokeError> {
    let config = &deps.config;
    let who = caller(request.request_context_ref(), &config.tenant_claim)
        .ok_or(InvokeError::Unauthenticated)?;
    outcome.caller = Some(who.clone());

    let body = request.body().as_ref();
    if body.len() > config.max_body_bytes {
        return Err(InvokeError::BodyTooLarge {
            limit: config.max_body_bytes,
        });
    }
    let req = api::parse(body)?;

    let tenant = deps
        .tenants
        .get(&who.tenant_id)
        .await?
        .ok_or(InvokeError::UnknownTenant)?;
    if tenant.status == TenantStatus::Suspended {
        return Err(InvokeError::TenantSuspended);
    }
    if !tenant.may_use(&req.template_id) {
        return Err(InvokeError::TemplateNotAllowed);
    }
    let day = today();

    let stored = deps
        .templates
        .version(&req.template_id, req.version)
        .await?;
    let meta = &stored.meta;
    outcome.template = Some((meta.template_id.clone(), meta.version));
    match meta.status {
        VersionStatus::Available => {}
        VersionStatus::Retired => return Err(InvokeError::VersionRetired),
        VersionStatus::Draft if tenant.spec.preview => {}
        VersionStatus::Draft => return Err(InvokeError::VersionDraft),
    }
    outcome.model_id = Some(meta.settings.model_id.clone());
    check_variables(&meta.settings.variables, &req.variables)?;
    let (max_tokens, temperature) =
        api::inference_settings(&req.inference, &meta.settings.inference)?;
    let limits = CallLimits {
        max_tokens,
        temperature,
        timeout: config.model_timeout,
        deadline: request.lambda_context_ref().map(|c| c.deadline()),
    };

    // Fail closed: nothing is decrypted, and no query embedded, unless no log could capture the
    // prompt (nor, for a version that retrieves context, the query's embedding).
    let embeds = meta.settings.retrieval.is_some();
    outcome.logging_check_age = Some(deps.logging.check(embeds).await?);

    // The day's request is reserved atomically before the model is called, so concurrent
    // instances never pass the tenant's daily request limit; given back only when the model
    // certainly did no work for it (`release`).
    if !deps
        .usage
        .reserve(&who.tenant_id, &day, tenant.spec.quotas)
        .await?
    {
        return Err(InvokeError::QuotaExceeded {
            retry_after_secs: seconds_to_utc_midnight(),
        });
    }
    Ok(Admitted {
        who,
        req,
        tenant,
        day,
        stored,
        limits,
    })
}

/// Gives the day's request back after `error`, unless the model may have done work for it (a
/// timeout or a failure mid-call: Bedrock may have answered, and a caller could otherwise run
/// past its limit on calls that time out).
pub async fn release(deps: &Deps, admitted: &Admitted, error: &InvokeError) {
    if matches!(
        error,
        InvokeError::ModelTimeout | InvokeError::Model(_) | InvokeError::ModelStream(_)
    ) {
        return;
    }
    let who = &admitted.who;
    if let Err(release) = deps.usage.release(&who.tenant_id, &admitted.day).await {
        let release = InvokeError::from(release);
        tracing::error!(
            error_code = "quota_release_failed",
            aws_error_code = release.aws_error_code().as_deref(),
            tenant_id = %who.tenant_id,
            "a reserved request was not given back"
        );
    }
}

async fn invoke(
    deps: &Deps,
    request: &Request,
    request_id: &str,
    started_at: SystemTime,
    outcome: &mut Outcome,
) -> Result<InvokeResponse, InvokeError> {
    let admitted = admit(deps, request, outcome).await?;
    let Admitted {
        who, req, stored, ..
    } = &admitted;
    let answer = ask_model(
        deps,
        who,
        stored,
        req,
        request_id,
        admitted.limits,
        admitted.terms(),
    )
    .await;
    let Answer {
        reply,
        guard,
        metadata,
        prompt,
        retrieved,
    } = match answer {
        Ok(answer) => answer,
        Err(e) => {
            release(deps, &admitted, &e).await;
            return Err(e);
        }
    };
    outcome.usage = reply.usage;
    outcome.guard = Some(guard.clone());
    outcome.retrieved = retrieved.clone();
    settle(
        deps,
        &admitted,
        Settled {
            model_request_id: reply
                .model_request_id
                .clone()
                .unwrap_or_else(|| request_id.to_owned()),
            started_at,
            usage: reply.usage,
            stop_reason: reply.stop_reason.clone(),
            output: reply.text.to_string(),
            guard: guard.clone(),
            metadata,
            prompt,
            retrieved: &retrieved,
        },
    )
    .await;
    if let Some(at) = reply.guardrail {
        return Err(InvokeError::GuardrailIntervened(at));
    }
    if guard.action == LeakAction::Withheld {
        return Err(InvokeError::OutputWithheld);
    }
    Ok(response(request_id, &stored.meta, &reply, guard))
}

/// What a finished model call leaves to be kept: the tokens for the ledger and, for a tenant
/// that opted in, the exchange for its payload record.
pub struct Settled<'a> {
    pub model_request_id: String,
    pub started_at: SystemTime,
    pub usage: TokenUsage,
    pub stop_reason: String,
    /// The guarded reply, as the client got it.
    pub output: String,
    pub guard: LeakReport,
    pub metadata: RequestMetadata,
    pub prompt: Option<RecordPrompt>,
    pub retrieved: &'a [String],
}

/// The model has answered and its cost is spent: meters the tokens and writes an opted-in
/// tenant's payload record. A failed write is logged and counted, not turned into an error for
/// the caller.
pub async fn settle(deps: &Deps, admitted: &Admitted, done: Settled<'_>) {
    let who = &admitted.who;
    let meta = &admitted.stored.meta;
    if let Err(e) = deps
        .usage
        .record(
            &who.tenant_id,
            &admitted.day,
            &meta.settings.model_id,
            &done.usage,
        )
        .await
    {
        let e = InvokeError::from(e);
        tracing::error!(
            error_code = "metering_failed",
            aws_error_code = e.aws_error_code().as_deref(),
            tenant_id = %who.tenant_id,
            "usage ledger update failed"
        );
    }
    let Some(prompt) = done.prompt else {
        return;
    };
    let exchange = Exchange {
        source: Source::Invoke,
        model_request_id: done.model_request_id,
        time: timestamp_micros(done.started_at),
        model_id: meta.settings.model_id.clone(),
        prompt,
        output: done.output,
        stop_reason: Some(done.stop_reason),
        guard: done.guard,
        usage: done.usage,
        // The tenant's own chunks; the ISV's ids (its collections, their size) stay in the
        // ISV's audit line.
        retrieved: done
            .retrieved
            .iter()
            .filter(|id| !id.starts_with("isv:"))
            .cloned()
            .collect(),
    };
    let record = PayloadRecord::new(done.metadata, exchange);
    write_record(deps, &admitted.tenant, &record).await;
}

/// Stores the tenant's payload record. The model has answered by now: a failed write is logged
/// (`payload_record_failed`), not turned into an error for the caller.
async fn write_record(deps: &Deps, tenant: &Tenant, record: &PayloadRecord) {
    let retention = tenant.spec.payload_logging.retention_days;
    match deps.records.put(record, retention).await {
        Ok(Written::Stored) => {}
        Ok(Written::AlreadyStored) => tracing::warn!(
            tenant_id = %record.tenant_id,
            model_request_id = %record.model_request_id,
            "a payload record for this model request was already stored"
        ),
        Err(e) => {
            let e = InvokeError::from(e);
            tracing::error!(
                error_code = "payload_record_failed",
                aws_error_code = e.aws_error_code().as_deref(),
                tenant_id = %record.tenant_id,
                "payload record not stored"
            );
        }
    }
}

/// What the tenant's settings decide for one model call.
#[derive(Debug, Default, Clone, Copy)]
pub struct TenantTerms<'a> {
    /// Keep the prompt in its payload-record form (the tenant opted in).
    pub record: bool,
    /// The tenant's own context key, and its own retrieve-context.
    pub context: Option<&'a TenantContext>,
}

/// A request's prompt, assembled and ready for the model, with what its guard needs: the only
/// place template plaintext is held (in `assembled`'s ISV blocks) between decryption and the
/// call.
pub struct Prepared {
    pub assembled: Assembled,
    fingerprints: Arc<Fingerprints>,
    /// The ISV blocks as sent, fingerprinted.
    sent: Fingerprints,
    /// The caller's own text, which coming back is no leak.
    known: KnownText,
    canary: String,
    pub metadata: RequestMetadata,
    /// `metadata` as Bedrock's `requestMetadata` takes it.
    entries: HashMap<String, String>,
    /// The retrieved chunks placed in the prompt, by id.
    pub retrieved: Vec<String>,
}

impl Prepared {
    /// The scanner for this request's reply: the version's fingerprints, the ISV blocks as sent,
    /// the canary, the caller's own text.
    pub fn scanner(&self) -> Scanner<'_> {
        Scanner::new(&self.fingerprints)
            .with_canary(&self.canary)
            .with_sent(&self.sent)
            .with_known(&self.known)
    }

    /// The policy sealed with the fingerprints, not the version item's settings (stored in the
    /// clear): changing the guard takes the fingerprint key, as changing the template takes its.
    pub fn policy(&self) -> LeakPolicy {
        self.fingerprints.policy()
    }

    pub fn call<'a>(&'a self, meta: &'a VersionMeta, limits: CallLimits) -> ModelCall<'a> {
        ModelCall {
            model_id: &meta.settings.model_id,
            assembled: &self.assembled,
            max_tokens: limits.max_tokens,
            temperature: limits.temperature,
            guardrail: meta.settings.guardrail.as_ref(),
            metadata: self.entries.clone(),
        }
    }
}

/// From a checked request to the assembled prompt. The template is decrypted, rendered and
/// assembled here, each form dropped as soon as the next one exists.
pub async fn prepare(
    deps: &Deps,
    who: &Caller,
    stored: &StoredVersion,
    req: &InvokeRequest,
    request_id: &str,
    context_terms: Option<&TenantContext>,
) -> Result<Prepared, InvokeError> {
    let meta = &stored.meta;
    // Fingerprints first: a version the guard cannot check is never opened.
    let fingerprints = deps
        .templates
        .fingerprints()
        .get(&meta.template_id, meta.version)
        .await?;
    // Context first, before any template text is open: sealed chunks found by
    // retrieve-context, opened here as this tenant's.
    let retrieved = match &meta.settings.retrieval {
        Some(settings) => match retrieval::query(settings, &req.variables) {
            Some(query) => {
                let request = RetrieveRequest {
                    tenant_id: who.tenant_id.clone(),
                    template_id: meta.template_id.clone(),
                    version: meta.version,
                    query: query.to_owned(),
                    collections: settings.collections.clone(),
                    k: settings.k,
                    min_score: settings.min_score,
                };
                retrieval::retrieve(deps.retrieval.as_ref(), settings, request, context_terms)
                    .await?
            }
            None => Retrieved::default(),
        },
        None => Retrieved::default(),
    };
    let mut context = req.context_documents();
    context.extend(retrieved.tenant);
    let history = guarded_history(req, &fingerprints)?;
    let canary = format!("zq{}", promptseal::random_hex::<8>());
    let salt = promptseal::random_hex::<8>();
    let text = deps.templates.decrypt(stored).await?;
    let mut rendered = deps.renderer.render(&text, &req.variables)?;
    let layout = meta.settings.prompt_cache;
    if layout == CacheLayout::ValuesAfter {
        // Checked when the version was sealed; a text that is not plain stays as rendered.
        if let Some(system) = values_after(&text.system, &req.variables) {
            rendered.system = system;
        }
    }
    let cached = deps
        .config
        .prompt_cache
        .prefix(&text.system, layout, &meta.settings.model_id)
        .map(|opening| Zeroizing::new(opening.to_owned()));
    drop(text);
    let mut assembled = assemble(&rendered, &context, retrieved.isv.as_ref(), &salt, &canary)
        .with_history(&history, &salt)
        .map_err(|e| InvokeError::InvalidRequest(e.to_string()))?;
    if let Some(opening) = cached {
        assembled = assembled.with_cache_point(&opening);
    }
    drop(context);
    drop(rendered);
    // What the template computed at render time is ISV text too: the reply is also checked
    // against the ISV blocks as sent.
    let sent = Fingerprints::of_sent(assembled.isv_pieces(), fingerprints.settings());
    // The caller's own input and documents coming back are not a leak (as redact-log reads
    // them from the invocation log: the blocks as sent).
    let known = KnownText::of(assembled.tenant_texts(), fingerprints.min_span());
    let metadata = RequestMetadata {
        tenant_id: who.tenant_id.clone(),
        principal: Some(who.principal.clone()),
        template_id: meta.template_id.clone(),
        template_version: meta.version,
        request_id: Some(request_id.to_owned()),
        block_map: assembled.block_map(),
    };
    // A version sealed before conversations were bounded into its block map may not take a
    // long history: the caller's to shorten, not the ISV's error.
    let entries = metadata.to_entries().map_err(|e| {
        if req.history.is_empty() {
            InvokeError::from(e)
        } else {
            InvokeError::InvalidRequest("history: too many turns for this template version".into())
        }
    })?;
    Ok(Prepared {
        assembled,
        fingerprints,
        sent,
        known,
        canary,
        metadata,
        entries,
        retrieved: retrieved.ids,
    })
}

/// The request's earlier turns, each of the assistant's scanned as a reply is: a turn the
/// client sends back as the model's own must not carry template text back into the prompt (an
/// earlier leak, or a forged turn), so a request holding one is refused before the model is
/// called. Refused whole, and counted with the withheld replies that the probing alarm
/// watches: replacing the text instead would show the caller, turn by turn, which of its
/// guesses are template text.
fn guarded_history(
    req: &InvokeRequest,
    fingerprints: &Fingerprints,
) -> Result<Vec<Turn>, InvokeError> {
    let scanner = Scanner::new(fingerprints);
    let history = req.history();
    let repeats = history
        .iter()
        .filter(|turn| turn.role == Role::Assistant)
        .any(|turn| !scanner.scan(&turn.text).is_empty());
    if repeats {
        return Err(InvokeError::HistoryWithheld);
    }
    Ok(history)
}

/// From a checked request to the guarded reply: the prompt prepared, the model called, the reply
/// scanned for the version's fingerprints and this request's canary, and redacted or withheld
/// as the version's policy says. With `record`, the prompt is also kept in its payload-record
/// form (ISV blocks as placeholders).
pub async fn ask_model(
    deps: &Deps,
    who: &Caller,
    stored: &StoredVersion,
    req: &InvokeRequest,
    request_id: &str,
    limits: CallLimits,
    terms: TenantTerms<'_>,
) -> Result<Answer, InvokeError> {
    let meta = &stored.meta;
    let prepared = prepare(deps, who, stored, req, request_id, terms.context).await?;
    let mut reply = converse::call(
        &deps.bedrock,
        prepared.call(meta, limits),
        model_timeout(limits.timeout, limits.deadline),
    )
    .await?;
    let prompt = terms
        .record
        .then(|| RecordPrompt::of(&prepared.assembled, &meta.template_id, meta.version));
    let (guard, replacement) = prepared.scanner().enforce(&reply.text, prepared.policy());
    if let Some(text) = replacement {
        reply.text = Zeroizing::new(text);
    }
    let Prepared {
        metadata,
        retrieved,
        ..
    } = prepared;
    Ok(Answer {
        reply,
        guard,
        metadata,
        prompt,
        retrieved,
    })
}

/// The success body for a guarded reply.
pub fn response(
    request_id: &str,
    meta: &VersionMeta,
    reply: &ModelReply,
    guard: LeakReport,
) -> InvokeResponse {
    InvokeResponse {
        output: reply.text.to_string(),
        summary: summary(request_id, meta, &reply.stop_reason, reply.usage, guard),
    }
}

/// What a client is told about an answer besides its text.
pub fn summary(
    request_id: &str,
    meta: &VersionMeta,
    stop_reason: &str,
    usage: TokenUsage,
    guard: LeakReport,
) -> ReplySummary {
    ReplySummary {
        request_id: request_id.to_owned(),
        template_id: meta.template_id.clone(),
        template_version: meta.version,
        model_id: meta.settings.model_id.clone(),
        stop_reason: stop_reason.to_owned(),
        usage: Usage::from(usage),
        guard,
    }
}

pub fn json_response(body: &InvokeResponse) -> Response<Body> {
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::Text(
            serde_json::to_string(body).expect("the response always serialises"),
        ))
        .expect("status and headers are valid")
}

fn seconds_to_utc_midnight() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    86_400 - now % 86_400
}

/// One audit line and one metrics record per request of `function` (`invoke`, or
/// `invoke-stream` for a streamed reply): ids, counts, durations and codes only.
pub fn audit(
    function: &str,
    outcome: &Outcome,
    error: Option<&InvokeError>,
    request_id: &str,
    latency: Duration,
) {
    let tenant_id = outcome.caller.as_ref().map(|c| c.tenant_id.as_str());
    let principal = outcome.caller.as_ref().map(|c| c.principal.as_str());
    let (template_id, template_version) = match &outcome.template {
        Some((id, v)) => (Some(id.as_str()), Some(*v)),
        None => (None, None),
    };
    let code = error.map_or("ok", |e| e.code().as_str());
    let status = error.map_or(200, |e| e.status().as_u16());
    let latency_ms = latency.as_secs_f64() * 1000.0;
    let guard_action = outcome.guard.as_ref().map(|g| g.action.as_str());
    let retrieved_chunks = outcome.retrieved.join(",");
    let leak_findings = outcome.guard.as_ref().map_or(0, |g| g.findings);
    let usage = &outcome.usage;
    let first_byte_ms = outcome.first_byte.map(|d| d.as_secs_f64() * 1000.0);
    match error {
        Some(e) if e.status().is_server_error() => tracing::error!(
            target: "audit",
            request_id, tenant_id, principal, template_id, template_version,
            model_id = outcome.model_id.as_deref(),
            status, error_code = code, aws_error_code = e.aws_error_code().as_deref(),
            latency_ms, first_byte_ms,
            "invoke failed"
        ),
        Some(_) => tracing::warn!(
            target: "audit",
            request_id, tenant_id, principal, template_id, template_version,
            model_id = outcome.model_id.as_deref(),
            status, error_code = code, guard_action, leak_findings,
            input_tokens = usage.input_tokens, output_tokens = usage.output_tokens,
            cache_read_input_tokens = usage.cache_read_input_tokens,
            cache_write_input_tokens = usage.cache_write_input_tokens,
            retrieved_chunks, latency_ms, first_byte_ms,
            "invoke refused"
        ),
        None => tracing::info!(
            target: "audit",
            request_id, tenant_id, principal, template_id, template_version,
            model_id = outcome.model_id.as_deref(),
            status, input_tokens = usage.input_tokens, output_tokens = usage.output_tokens,
            cache_read_input_tokens = usage.cache_read_input_tokens,
            cache_write_input_tokens = usage.cache_write_input_tokens,
            guard_action, leak_findings, retrieved_chunks, latency_ms, first_byte_ms,
            "invoke completed"
        ),
    }
    let mut metrics = vec![
        ("Requests", 1.0, Unit::Count),
        (
            "Errors",
            if error.is_some() { 1.0 } else { 0.0 },
            Unit::Count,
        ),
        ("InputTokens", usage.input_tokens as f64, Unit::Count),
        ("OutputTokens", usage.output_tokens as f64, Unit::Count),
        (
            "CacheReadInputTokens",
            usage.cache_read_input_tokens as f64,
            Unit::Count,
        ),
        (
            "CacheWriteInputTokens",
            usage.cache_write_input_tokens as f64,
            Unit::Count,
        ),
        ("LeakFindings", leak_findings as f64, Unit::Count),
        ("Latency", latency_ms, Unit::Milliseconds),
    ];
    if let Some(ms) = first_byte_ms {
        metrics.push(("FirstByte", ms, Unit::Milliseconds));
    }
    if let Some(age) = outcome.logging_check_age {
        let age_ms = age.as_secs_f64() * 1000.0;
        metrics.push(("LoggingCheckAge", age_ms, Unit::Milliseconds));
    }
    // Withheld replies per tenant: a tenant that keeps making the model repeat the template is
    // probing for it, and template.yaml's alarm watches this.
    if let (Some(InvokeError::OutputWithheld | InvokeError::HistoryWithheld), Some(tenant_id)) =
        (error, tenant_id)
    {
        MetricRecord {
            namespace: "promptseal",
            dimensions: &[("Function", function), ("TenantId", tenant_id)],
            metrics: &[("OutputWithheld", 1.0, Unit::Count)],
            properties: &[("request_id", json!(request_id))],
        }
        .emit();
    }
    MetricRecord {
        namespace: "promptseal",
        dimensions: &[("Function", function), ("Outcome", code)],
        metrics: &metrics,
        properties: &[
            ("request_id", json!(request_id)),
            ("tenant_id", json!(tenant_id)),
            ("template_id", json!(template_id)),
            ("template_version", json!(template_version)),
        ],
    }
    .emit();
}
