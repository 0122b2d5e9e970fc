//! Keeps openapi.yaml true: its request examples parse, its response example has exactly the
//! response's fields, and its error codes and statuses are exactly the ones the handler produces.

use std::collections::BTreeSet;

use promptseal::envelope::EnvelopeError;
use promptseal::leak::{GuardAction, GuardReport};
use promptseal::render::RenderError;
use promptseal::template::VariableError;
use serde_json::Value;

use crate::api::{self, InvokeResponse, Usage};
use crate::error::InvokeError;
use crate::logging_guard::GuardError;

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn operation(spec: &Value) -> &Value {
    &spec["paths"]["/v1/invoke"]["post"]
}

/// One of every error the handler can return.
fn every_error() -> Vec<InvokeError> {
    use InvokeError::*;
    let bedrock_runtime = aws_sdk_bedrockruntime::Error::ValidationException(
        aws_sdk_bedrockruntime::types::error::ValidationException::builder().build(),
    );
    let bedrock = aws_sdk_bedrock::Error::AccessDeniedException(
        aws_sdk_bedrock::types::error::AccessDeniedException::builder().build(),
    );
    let errors = vec![
        Unauthenticated,
        BodyTooLarge { limit: 1 },
        MalformedJson,
        InvalidRequest("x".into()),
        TenantInBody,
        Variable(VariableError::Missing("q".into())),
        Variable(VariableError::Unknown("q".into())),
        Variable(VariableError::TooLong {
            name: "q".into(),
            max_chars: 1,
        }),
        InvalidInference("x".into()),
        VariableNeeded,
        UnknownTenant,
        TenantSuspended,
        TemplateNotAllowed,
        TemplateNotFound,
        VersionNotFound,
        NoActiveVersion,
        VersionRetired,
        VersionDraft,
        QuotaExceeded {
            retry_after_secs: 1,
        },
        ModelThrottled,
        LoggingGuard(GuardError::TextLoggingEnabled { count: 1 }),
        LoggingGuard(GuardError::CheckFailed(Box::new(bedrock))),
        Kms(EnvelopeError::MalformedDataKey),
        TemplateIntegrity(EnvelopeError::Integrity),
        Store(Box::new(std::io::Error::other("x"))),
        Render(RenderError::OutOfFuel {
            part: "system".into(),
        }),
        TooManyBlocks,
        Model(Box::new(bedrock_runtime)),
        ModelTimeout,
        OutputWithheld,
        GuardrailIntervened(crate::converse::Intervened::Input),
        FingerprintsMissing,
        FingerprintsUnreadable(promptseal::fingerprints::FingerprintError::Payload(
            promptseal::leak::MalformedFingerprints,
        )),
    ];
    // A new variant fails to compile here until it is listed above and documented.
    for e in &errors {
        match e {
            Unauthenticated
            | BodyTooLarge { .. }
            | MalformedJson
            | InvalidRequest(_)
            | TenantInBody
            | Variable(_)
            | InvalidInference(_)
            | VariableNeeded
            | UnknownTenant
            | TenantSuspended
            | TemplateNotAllowed
            | TemplateNotFound
            | VersionNotFound
            | NoActiveVersion
            | VersionRetired
            | VersionDraft
            | QuotaExceeded { .. }
            | ModelThrottled
            | LoggingGuard(_)
            | Kms(_)
            | TemplateIntegrity(_)
            | Store(_)
            | Render(_)
            | TooManyBlocks
            | Model(_)
            | ModelTimeout
            | OutputWithheld
            | GuardrailIntervened(_)
            | FingerprintsMissing
            | FingerprintsUnreadable(_) => {}
        }
    }
    errors
}

#[test]
fn request_examples_are_accepted_by_the_handler() {
    let spec = spec();
    let examples = operation(&spec)["requestBody"]["content"]["application/json"]["examples"]
        .as_object()
        .unwrap();
    assert!(examples.len() >= 2);
    let mut fields_used = BTreeSet::new();
    for (name, example) in examples {
        let value = &example["value"];
        fields_used.extend(value.as_object().unwrap().keys().cloned());
        let parsed = api::parse(value.to_string().as_bytes());
        assert!(parsed.is_ok(), "example {name}: {:?}", parsed.err());
    }
    let documented: BTreeSet<String> = spec["components"]["schemas"]["InvokeRequest"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        fields_used, documented,
        "the examples cover every documented field"
    );
}

#[test]
fn the_response_example_has_exactly_the_responses_fields() {
    let spec = spec();
    let example = &operation(&spec)["responses"]["200"]["content"]["application/json"]["example"];
    let actual = serde_json::to_value(InvokeResponse {
        request_id: "r".into(),
        template_id: "t".into(),
        template_version: 1,
        model_id: "m".into(),
        output: "o".into(),
        stop_reason: "end_turn".into(),
        usage: Usage {
            input_tokens: 1,
            output_tokens: 1,
            total_tokens: 2,
        },
        guard: GuardReport {
            action: GuardAction::Passed,
            findings: 0,
            forms: vec![],
        },
    })
    .unwrap();
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(keys(example), keys(&actual));
    assert_eq!(keys(&example["usage"]), keys(&actual["usage"]));
    assert_eq!(keys(&example["guard"]), keys(&actual["guard"]));
    let required: BTreeSet<String> = spec["components"]["schemas"]["InvokeResponse"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(required, keys(&actual));
}

#[test]
fn documented_error_codes_and_statuses_are_the_handlers() {
    let spec = spec();
    let documented: BTreeSet<String> =
        spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
    let errors = every_error();
    let produced: BTreeSet<String> = errors.iter().map(|e| e.code().to_owned()).collect();
    assert_eq!(documented, produced);

    let responses = &operation(&spec)["responses"];
    for e in &errors {
        let status = e.status().as_u16().to_string();
        let response = &responses[&status];
        assert!(
            response.is_object(),
            "{} returns {status}, which is not documented",
            e.code()
        );
        if e.retry_after_secs().is_some() {
            assert!(
                response["headers"]["Retry-After"].is_object(),
                "{status} documents Retry-After"
            );
        }
    }
    for (status, response) in responses.as_object().unwrap() {
        let Some(code) =
            response["content"]["application/json"]["example"]["error"]["code"].as_str()
        else {
            continue;
        };
        let e = errors.iter().find(|e| e.code() == code).unwrap();
        assert_eq!(&e.status().as_u16().to_string(), status, "example {code}");
    }
}
