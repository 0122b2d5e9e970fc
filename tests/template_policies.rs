//! template.yaml's least-privilege promises, read from the template itself: only invoke (and the
//! operators) can decrypt templates; the functions that handle logs can open fingerprints and
//! nothing sealed under the template key.

use serde_yaml_ng::{Mapping, Value};

fn template() -> Value {
    load("template.yaml")
}

/// The tenant-side template: retrieve-context alone, in a tenant's account.
fn tenant_template() -> Value {
    load("tenant-context.yaml")
}

fn load(name: &str) -> Value {
    let path = format!("{}/../{name}", env!("CARGO_MANIFEST_DIR"));
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn yaml(s: &str) -> Value {
    serde_yaml_ng::from_str(s).unwrap()
}

fn resources(t: &Value) -> &Mapping {
    t["Resources"].as_mapping().unwrap()
}

/// A value's text, tags and all, for "does it name X" checks.
fn text(v: &Value) -> String {
    format!("{v:?}")
}

/// The actions a statement grants, as written.
fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(a) => vec![a.clone()],
        Value::Sequence(s) => s
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    }
}

fn grants_decrypt(statement: &Value) -> bool {
    actions(statement)
        .iter()
        .any(|a| matches!(a.as_str(), "kms:Decrypt" | "kms:*" | "*"))
}

/// Every statement of every inline policy of a role, `Fn::If` branches included.
fn role_statements(role: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for policy in role["Properties"]["Policies"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        for s in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
            match s {
                Value::Tagged(t) if t.tag == "If" => {
                    out.extend(t.value.as_sequence().unwrap()[1..].iter().cloned())
                }
                s => out.push(s.clone()),
            }
        }
    }
    out
}

/// Every action a role's statements grant, sorted, once each.
fn role_actions(statements: &[Value]) -> Vec<String> {
    let mut granted: Vec<String> = statements.iter().flat_map(actions).collect();
    granted.sort();
    granted.dedup();
    granted
}

fn roles(t: &Value) -> impl Iterator<Item = (&str, &Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::IAM::Role")
        .map(|(id, r)| (id.as_str().unwrap(), r))
}

#[test]
fn no_role_but_invokes_can_decrypt_with_the_template_key() {
    let t = template();
    let roles: Vec<_> = roles(&t).collect();
    assert!(roles.len() >= 2, "invoke's role and at least redact-log's");
    for (id, role) in roles {
        for statement in role_statements(role) {
            if !grants_decrypt(&statement) {
                continue;
            }
            let resource = text(&statement["Resource"]);
            assert!(
                !resource.contains('*') || resource.contains("arn:"),
                "{id} may decrypt with any key: {statement:?}"
            );
            if resource.contains("TemplateKey") {
                assert_eq!(id, "InvokeRole", "{id} may decrypt templates");
            }
        }
    }
}

#[test]
fn the_template_keys_policy_lets_only_invoke_and_the_operators_decrypt() {
    let t = template();
    let key = &resources(&t)["TemplateKey"];
    for statement in key["Properties"]["KeyPolicy"]["Statement"]
        .as_sequence()
        .unwrap()
    {
        if !grants_decrypt(statement) {
            continue;
        }
        let who = text(&statement["Principal"]) + &text(&statement["Condition"]);
        let invoke_only = who.contains("-invoke\"") && !who.contains("redact-log");
        let operators = text(&statement["Principal"]).contains("AdminPrincipalArn");
        assert!(invoke_only || operators, "{statement:?}");
        assert!(
            text(&statement["Condition"]).contains("purpose"),
            "decrypt is bound to the template encryption context: {statement:?}"
        );
    }
}

/// Who may decrypt with a key, by its key policy: the role names in its statements' conditions
/// (operators, who may only seal context and vectors, are named by `AdminPrincipalArn`).
fn key_decrypters(t: &Value, key: &str) -> Vec<String> {
    resources(t)[key]["Properties"]["KeyPolicy"]["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|s| grants_decrypt(s))
        .map(|s| text(&s["Principal"]) + &text(&s["Condition"]))
        .collect()
}

#[test]
fn context_text_opens_in_invoke_alone_and_vectors_in_retrieve_context_alone() {
    let t = template();
    // The key policies: one role each, bound to the purposes sealed under the key.
    let context = key_decrypters(&t, "ContextKey");
    assert_eq!(context.len(), 1, "{context:?}");
    assert!(context[0].contains("-invoke\"") && context[0].contains("tenant-context"));
    let vectors = key_decrypters(&t, "VectorKey");
    assert_eq!(vectors.len(), 1, "{vectors:?}");
    assert!(vectors[0].contains("-retrieve-context\"") && vectors[0].contains("vectors"));
    // The operators seal, and open neither.
    for key in ["ContextKey", "VectorKey"] {
        assert!(
            key_decrypters(&t, key)
                .iter()
                .all(|who| !who.contains("AdminPrincipalArn")),
            "{key}"
        );
    }

    // retrieve-context's role: reads, opens vectors, embeds; nothing more.
    let role = role_statements(&resources(&t)["RetrieveContextRole"]);
    assert_eq!(
        role_actions(&role),
        [
            "bedrock:InvokeModel",
            "dynamodb:BatchGetItem",
            "dynamodb:GetItem",
            "kms:Decrypt",
            "s3:GetObject",
            "s3vectors:QueryVectors"
        ]
    );
    for s in &role {
        if grants_decrypt(s) {
            // Its vectors, or S3 Vectors' encryption at rest (through that service only).
            let resource = text(&s["Resource"]);
            let through_s3_vectors = resource.contains("VectorIndexKey")
                && text(&s["Condition"]).contains("kms:ViaService")
                && text(&s["Condition"]).contains("s3vectors.");
            assert!(
                resource == text(&yaml("!GetAtt VectorKey.Arn")) || through_s3_vectors,
                "{s:?}"
            );
        }
        if actions(s).iter().any(|a| a.starts_with("bedrock:")) {
            assert!(text(&s["Resource"]).contains("EmbeddingModelArns"), "{s:?}");
        }
    }
    // invoke may call retrieve-context and open chunks, under their purposes only.
    let invoke = role_statements(&resources(&t)["InvokeRole"]);
    assert!(
        invoke
            .iter()
            .any(|s| actions(s) == ["lambda:InvokeFunction"]
                && text(&s["Resource"]).contains("-retrieve-context"))
    );
    assert!(invoke.iter().any(|s| grants_decrypt(s)
        && text(&s["Resource"]).contains("ContextKey")
        && text(&s["Condition"]).contains("tenant-context")));
    // No other role opens context chunks or vectors.
    for (id, role) in roles(&t) {
        for s in role_statements(role) {
            if grants_decrypt(&s) && text(&s["Resource"]).contains("ContextKey") {
                assert_eq!(id, "InvokeRole");
            }
        }
    }

    for (id, role) in roles(&t) {
        for s in role_statements(role) {
            if grants_decrypt(&s) && text(&s["Resource"]).contains("VectorKey") {
                assert_eq!(id, "RetrieveContextRole");
            }
        }
    }
}

/// Collections kept in S3 Vectors: whatever identity policies say, the bucket policy lets only
/// retrieve-context read vectors and only the operators write them; retrieve-context itself may
/// only query (keys and distances: no vector data, no metadata); the key the service encrypts
/// them under at rest is used by the service alone, for this account.
#[test]
fn s3_vectors_are_read_by_retrieve_context_alone_and_written_by_operators_alone() {
    let t = template();
    let r = resources(&t);
    let policy = &r["VectorIndexBucketPolicy"]["Properties"];
    assert_eq!(
        text(&policy["VectorBucketArn"]),
        text(&yaml("!Ref VectorIndexBucket"))
    );
    let statements = policy["Policy"]["Statement"].as_sequence().unwrap();
    let denied_unless = |action: &str| -> String {
        let s = statements
            .iter()
            .find(|s| {
                actions(s).iter().any(|a| a == action)
                    && s["Condition"].get("ArnNotEquals").is_some()
            })
            .unwrap_or_else(|| panic!("nothing about who may {action}"));
        assert_eq!(s["Effect"].as_str(), Some("Deny"), "{s:?}");
        assert_eq!(s["Principal"].as_str(), Some("*"), "{s:?}");
        assert!(text(&s["Resource"]).contains("VectorIndexBucket"), "{s:?}");
        text(&s["Condition"]["ArnNotEquals"]["aws:PrincipalArn"])
    };
    for read in [
        "s3vectors:QueryVectors",
        "s3vectors:GetVectors",
        "s3vectors:ListVectors",
    ] {
        assert!(
            denied_unless(read).contains("-retrieve-context\""),
            "{read}"
        );
    }
    for rules in [
        "s3vectors:PutVectorBucketPolicy",
        "s3vectors:DeleteVectorBucketPolicy",
        "s3vectors:DeleteVectorBucket",
    ] {
        assert!(denied_unless(rules).contains("KeyAdminRoleArn"), "{rules}");
    }
    for write in [
        "s3vectors:PutVectors",
        "s3vectors:DeleteVectors",
        "s3vectors:CreateIndex",
        "s3vectors:DeleteIndex",
    ] {
        assert!(
            denied_unless(write).contains("AdminPrincipalArn"),
            "{write}"
        );
    }
    // No index with encryption other than the bucket's key.
    for (condition, value) in [
        ("s3vectors:sseType", "\"aws:kms\""),
        ("s3vectors:kmsKeyArn", "VectorIndexKey"),
    ] {
        assert!(
            statements.iter().any(|s| s["Effect"] == "Deny"
                && actions(s) == ["s3vectors:CreateIndex"]
                && text(&s["Condition"]["StringNotEqualsIfExists"][condition]).contains(value)),
            "{condition}"
        );
    }
    for (id, role) in roles(&t) {
        for s in role_statements(role) {
            let vector_actions: Vec<String> = actions(&s)
                .into_iter()
                .filter(|a| a.starts_with("s3vectors:") || a == "*")
                .collect();
            if !vector_actions.is_empty() {
                assert_eq!(id, "RetrieveContextRole", "{s:?}");
                assert_eq!(vector_actions, ["s3vectors:QueryVectors"]);
            }
        }
    }
    let key = r["VectorIndexKey"]["Properties"]["KeyPolicy"]["Statement"]
        .as_sequence()
        .unwrap();
    // The service, for this bucket; retrieve-context and the operators only through it.
    for user in key.iter().filter(|s| grants_decrypt(s)) {
        let condition = text(&user["Condition"]);
        if user["Principal"]["Service"].as_str() == Some("indexing.s3vectors.amazonaws.com") {
            assert!(condition.contains("aws:SourceAccount") && condition.contains("vector-index"));
        } else {
            assert!(condition.contains("kms:ViaService") && condition.contains("s3vectors."));
            let who = text(&user["Principal"]) + &condition;
            assert!(
                who.contains("-retrieve-context\"") || who.contains("AdminPrincipalArn"),
                "{user:?}"
            );
        }
    }
    let bucket = &r["VectorIndexBucket"]["Properties"]["EncryptionConfiguration"];
    assert_eq!(bucket["SseType"].as_str(), Some("aws:kms"));
    assert!(text(&bucket["KmsKeyArn"]).contains("VectorIndexKey"));
}

#[test]
fn redact_log_opens_fingerprints_but_no_template() {
    let t = template();
    let r = resources(&t);
    let role = &r["RedactLogRole"];
    let statements = role_statements(role);
    let all = text(&Value::Sequence(statements.clone()));
    assert!(
        !all.contains("TemplatesTable"),
        "redact-log reads no template item"
    );
    assert!(!all.contains("TemplateKey"));
    assert!(statements.iter().any(|s| grants_decrypt(s)
        && text(&s["Resource"]).contains("FingerprintKey")
        && text(&s["Condition"]).contains("fingerprints")));
    // The fingerprint key lets redact-log's role in, by name.
    let fp_policy = text(&r["FingerprintKey"]["Properties"]["KeyPolicy"]);
    assert!(fp_policy.contains("${AWS::StackName}-redact-log"));
}

#[test]
fn payload_records_are_encrypted_with_their_own_key_and_expire() {
    let t = template();
    let table = &resources(&t)["PayloadRecordsTable"]["Properties"];
    let sse = &table["SSESpecification"];
    assert_eq!(sse["SSEEnabled"], true);
    assert_eq!(sse["SSEType"], "KMS");
    assert!(text(&sse["KMSMasterKeyId"]).contains("PayloadRecordsKey"));
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"],
        "expires_at"
    );
    assert_eq!(table["TimeToLiveSpecification"]["Enabled"], true);
    // The records key is used by DynamoDB alone: every grant is conditioned on kms:ViaService.
    let key = &resources(&t)["PayloadRecordsKey"]["Properties"]["KeyPolicy"];
    for statement in key["Statement"].as_sequence().unwrap() {
        if grants_decrypt(statement) {
            assert!(
                text(&statement["Condition"]).contains("kms:ViaService"),
                "{statement:?}"
            );
        }
    }
}

#[test]
fn invoke_may_apply_only_the_guardrails_the_deployment_names() {
    let t = template();
    let role = &resources(&t)["InvokeRole"];
    let apply: Vec<Value> = role_statements(role)
        .into_iter()
        .filter(|s| actions(s).iter().any(|a| a == "bedrock:ApplyGuardrail"))
        .collect();
    assert_eq!(
        apply.len(),
        1,
        "Converse with a guardrail needs ApplyGuardrail"
    );
    assert_eq!(
        text(&apply[0]["Resource"]),
        text(&Value::Tagged(Box::new(
            serde_yaml_ng::value::TaggedValue {
                tag: serde_yaml_ng::value::Tag::new("Ref"),
                value: Value::String("GuardrailArns".into()),
            }
        )))
    );
    // Granted only when the deployment names guardrails.
    let policies = text(&role["Properties"]["Policies"]);
    assert!(policies.contains("HasGuardrails"), "{policies}");
    // No role may apply any guardrail at all.
    for (id, role) in roles(&t) {
        for s in role_statements(role) {
            let bedrock_wildcard = actions(&s).iter().any(|a| a == "bedrock:*" || a == "*");
            assert!(!bedrock_wildcard, "{id}: {s:?}");
        }
    }
}

/// Every statement of every KMS key policy, with the key's logical id.
fn key_statements(t: &Value) -> Vec<(String, Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::KMS::Key")
        .flat_map(|(id, r)| {
            let id = id.as_str().unwrap().to_owned();
            r["Properties"]["KeyPolicy"]["Statement"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(move |s| (id.clone(), s.clone()))
        })
        .collect()
}

fn any_action(statement: &Value, wanted: &[&str]) -> bool {
    actions(statement)
        .iter()
        .any(|a| wanted.contains(&a.as_str()) || a == "kms:*" || a == "*")
}

/// "Only invoke may decrypt" holds only if nobody can give themselves Decrypt: changing a key
/// policy is the named administrator role's alone, that role uses no key and grants nothing,
/// grants are made only by AWS services on a table's behalf, and the account is named only with
/// a condition saying who or which service.
#[test]
fn key_administrators_can_neither_use_the_keys_nor_grant_their_use() {
    for (t, keys) in [(template(), 6), (tenant_template(), 2)] {
        keys_are_administered_apart(&t, keys);
    }
}

fn keys_are_administered_apart(t: &Value, expected_keys: usize) {
    let statements = key_statements(t);
    assert!(statements.len() >= 2 * expected_keys);
    let mut administered = std::collections::BTreeSet::new();
    for (key, s) in &statements {
        let principal = text(&s["Principal"]);
        let condition = text(&s["Condition"]);
        let admin = principal.contains("KeyAdminRoleArn");
        if any_action(s, &["kms:PutKeyPolicy", "kms:Put*"]) {
            assert!(
                admin,
                "{key}: only the key administrator changes the policy: {s:?}"
            );
            administered.insert(key.clone());
        }
        if any_action(s, &["kms:CreateGrant", "kms:Create*"]) {
            assert!(
                condition.contains("kms:ViaService") || condition.contains("GrantIsForAWSResource"),
                "{key}: an unconditioned grant: {s:?}"
            );
        }
        if admin {
            let uses = [
                "kms:Decrypt",
                "kms:Encrypt",
                "kms:GenerateDataKey",
                "kms:GenerateDataKey*",
                "kms:ReEncrypt*",
                "kms:ReEncryptFrom",
                "kms:CreateGrant",
                "kms:Create*",
            ];
            assert!(
                !any_action(s, &uses),
                "{key}: the administrator uses the key: {s:?}"
            );
        }
        if principal.contains(":root") {
            assert!(
                condition.contains("aws:PrincipalArn") || condition.contains("kms:ViaService"),
                "{key}: the whole account is trusted: {s:?}"
            );
        }
    }
    let keys = resources(t)
        .values()
        .filter(|r| r["Type"] == "AWS::KMS::Key")
        .count();
    assert_eq!(keys, expected_keys);
    assert_eq!(
        administered.len(),
        keys,
        "every key has its administrator: {administered:?}"
    );
}

#[test]
fn no_role_may_change_a_key_policy_or_grant_key_use() {
    for t in [template(), tenant_template()] {
        no_role_changes_a_key_policy(&t);
    }
}

fn no_role_changes_a_key_policy(t: &Value) {
    for (id, role) in roles(t) {
        for s in role_statements(role) {
            let forbidden = [
                "kms:PutKeyPolicy",
                "kms:Put*",
                "kms:CreateGrant",
                "kms:Create*",
            ];
            assert!(!any_action(&s, &forbidden), "{id}: {s:?}");
        }
    }
}

/// An event that still fails after Lambda's retries is kept in a queue the function's role may
/// send to, not dropped.
#[test]
fn event_functions_keep_what_still_fails_in_a_queue() {
    let t = template();
    let r = resources(&t);
    for (function, role) in [
        ("RedactLogFunction", "RedactLogRole"),
        ("ExportLogsFunction", "ExportLogsRole"),
    ] {
        let on_failure =
            &r[function]["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"];
        assert_eq!(on_failure["Type"], "SQS", "{function}");
        let queue = text(&on_failure["Destination"]);
        let queue_id = r
            .iter()
            .filter(|(_, q)| q["Type"] == "AWS::SQS::Queue")
            .map(|(id, _)| id.as_str().unwrap())
            .find(|id| queue.contains(id))
            .unwrap_or_else(|| panic!("{function}: {queue} is no queue of the stack"));
        let sends = role_statements(&r[role]).into_iter().any(|s| {
            actions(&s).iter().any(|a| a == "sqs:SendMessage")
                && text(&s["Resource"]).contains(queue_id)
        });
        assert!(sends, "{role} may send to {queue_id}");
    }
}

/// export-logs cannot be pointed at anyone: it writes directly only into buckets of its own
/// account, and assumes a tenant's role only with an external id.
#[test]
fn the_export_role_writes_only_to_its_account_or_through_roles_with_an_external_id() {
    let t = template();
    let statements = role_statements(&resources(&t)["ExportLogsRole"]);
    let mut checked = 0;
    for s in &statements {
        let condition = text(&s["Condition"]);
        if actions(s).iter().any(|a| a == "s3:PutObject") {
            assert!(
                condition.contains("s3:ResourceAccount") && condition.contains("AWS::AccountId"),
                "{s:?}"
            );
            checked += 1;
        }
        if actions(s).iter().any(|a| a == "sts:AssumeRole") {
            assert!(condition.contains("sts:ExternalId"), "{s:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 2);
}

/// tenant-context.yaml, in a tenant's account: the tenant's chunk text opens only in the ISV's
/// invoke role and only as this tenant's; its vectors only in its own retrieve-context, which
/// serves this tenant alone, may be called by that invoke role alone, and opens no chunk. The
/// ISV's invoke role, for its part, may call such functions by name and open tenants' keys
/// for tenant chunks only, outside its own account.
#[test]
fn a_tenants_own_context_opens_only_in_the_isvs_invoke_and_only_as_that_tenants() {
    let t = tenant_template();
    let r = resources(&t);
    let context = key_decrypters(&t, "ContextKey");
    assert_eq!(
        context,
        [text(&yaml("AWS: !Ref IsvInvokeRoleArn"))
            + &text(&yaml(
                "StringEquals: {kms:EncryptionContext:purpose: tenant-context, kms:EncryptionContext:tenant: !Ref TenantId}"
            ))]
    );
    let vectors = key_decrypters(&t, "VectorKey");
    assert_eq!(vectors.len(), 1, "{vectors:?}");
    assert!(vectors[0].contains("-retrieve-context\"") && vectors[0].contains("vectors"));
    // The tenant's operators seal, as this tenant only, and open nothing.
    for (key, s) in key_statements(&t) {
        if text(&s["Principal"]).contains("AdminPrincipalArn") {
            assert_eq!(actions(&s), ["kms:GenerateDataKey"], "{key}");
            if key == "ContextKey" {
                assert!(text(&s["Condition"]).contains("TenantId"), "{s:?}");
            }
        }
    }

    let role = role_statements(&r["RetrieveContextRole"]);
    assert_eq!(
        role_actions(&role),
        [
            "bedrock:InvokeModel",
            "dynamodb:BatchGetItem",
            "dynamodb:GetItem",
            "kms:Decrypt",
            "s3:GetObject"
        ]
    );
    for s in role.iter().filter(|s| grants_decrypt(s)) {
        assert_eq!(text(&s["Resource"]), text(&yaml("!GetAtt VectorKey.Arn")));
    }
    let function = &r["RetrieveContextFunction"]["Properties"];
    assert_eq!(
        text(&function["Environment"]["Variables"]["HOSTED_TENANT_ID"]),
        text(&yaml("!Ref TenantId"))
    );
    let permissions: Vec<_> = r
        .values()
        .filter(|r| r["Type"] == "AWS::Lambda::Permission")
        .collect();
    assert_eq!(permissions.len(), 1);
    assert_eq!(
        text(&permissions[0]["Properties"]["Principal"]),
        text(&yaml("!Ref IsvInvokeRoleArn"))
    );

    // The ISV's side: the function's name matches what invoke may call.
    let isv = template();
    let pattern = isv["Parameters"]["TenantContextFunctionArnPattern"]["Default"]
        .as_str()
        .unwrap();
    let prefix = pattern.rsplit(':').next().unwrap().trim_end_matches('*');
    assert_eq!(
        text(&function["FunctionName"]),
        text(&yaml(&format!("!Sub \"{prefix}${{TenantId}}\"")))
    );
    let invoke = role_statements(&resources(&isv)["InvokeRole"]);
    assert!(
        invoke
            .iter()
            .any(|s| actions(s) == ["lambda:InvokeFunction"]
                && text(&s["Resource"]) == text(&yaml("!Ref TenantContextFunctionArnPattern")))
    );
    let foreign: Vec<_> = invoke
        .iter()
        .filter(|s| grants_decrypt(s) && text(&s["Resource"]).contains(":kms:*:*:key/*"))
        .collect();
    assert_eq!(foreign.len(), 1, "{foreign:?}");
    assert_eq!(
        text(&foreign[0]["Condition"]),
        text(&yaml(
            "{StringEquals: {kms:EncryptionContext:purpose: tenant-context}, \
             StringNotEquals: {aws:ResourceAccount: !Ref AWS::AccountId}}"
        ))
    );
}

/// The streamed endpoint: every route behind the pool's authorizer (the same claims as the HTTP
/// API's), its integration streaming through InvokeWithResponseStream, only that route allowed to
/// invoke the function, which runs as invoke does (the same role: the same keys and tables), and
/// streams from the configured models only.
#[test]
fn the_streamed_endpoint_is_authorized_like_the_buffered_one_and_streams_only_the_allowed_models() {
    let t = template();
    let r = resources(&t);
    let api = &r["StreamApi"]["Properties"]["DefinitionBody"];
    let schemes = &api["components"]["securitySchemes"];
    for (path, item) in api["paths"].as_mapping().unwrap() {
        for (method, operation) in item.as_mapping().unwrap() {
            let security = text(&operation["security"]);
            assert!(security.contains("TenantPool"), "{path:?} {method:?}");
            let integration = &operation["x-amazon-apigateway-integration"];
            assert_eq!(integration["responseTransferMode"], "STREAM");
            assert!(text(&integration["uri"]).contains("/response-streaming-invocations"));
        }
    }
    let pool = &schemes["TenantPool"]["x-amazon-apigateway-authorizer"];
    assert_eq!(pool["type"], "cognito_user_pools");
    assert!(text(&pool["providerARNs"]).contains("StreamUserPoolArn"));
    let permission = &r["InvokeStreamPermission"]["Properties"];
    assert!(text(&permission["SourceArn"]).contains("/*/POST/v1/invoke/stream"));
    assert_eq!(
        r["InvokeStreamFunction"]["Properties"]["Role"],
        r["InvokeFunction"]["Properties"]["Role"]
    );
    let invoke = role_statements(&r["InvokeRole"]);
    let streaming: Vec<_> = invoke
        .iter()
        .filter(|s| {
            actions(s)
                .iter()
                .any(|a| a == "bedrock:InvokeModelWithResponseStream")
        })
        .collect();
    assert_eq!(streaming.len(), 1);
    assert_eq!(streaming[0]["Resource"], yaml("!Ref AllowedModelArns"));
}
