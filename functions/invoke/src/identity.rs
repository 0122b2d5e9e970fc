//! Who is calling: the tenant and principal as the API Gateway authorizer established them (JWT
//! claims, or a Lambda authorizer's context). Nothing in the request body is consulted.

use lambda_http::aws_lambda_events::apigw::ApiGatewayRequestAuthorizer;
use lambda_http::request::RequestContext;
use promptseal::template::is_id;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant_id: String,
    pub principal: String,
}

/// The caller named by the authorizer, or `None` when there is no authorizer or no valid tenant.
pub fn caller(context: Option<&RequestContext>, tenant_claim: &str) -> Option<Caller> {
    let authorizer = match context? {
        RequestContext::ApiGatewayV2(ctx) => ctx.authorizer.as_ref()?,
        RequestContext::ApiGatewayV1(ctx) => &ctx.authorizer,
        _ => return None,
    };
    from_authorizer(authorizer, tenant_claim).filter(|c| is_id(&c.tenant_id))
}

fn from_authorizer(authorizer: &ApiGatewayRequestAuthorizer, claim: &str) -> Option<Caller> {
    // HTTP API JWT authorizer: claims are strings.
    if let Some(jwt) = &authorizer.jwt {
        let tenant_id = jwt.claims.get(claim)?.clone();
        let principal = jwt.claims.get("sub").cloned().unwrap_or_default();
        return Some(Caller {
            tenant_id,
            principal,
        });
    }
    // Lambda authorizer context (HTTP API `lambda`, REST API top level), or a REST API Cognito
    // authorizer's `claims`.
    let fields = &authorizer.fields;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let tenant_id = text(fields.get(claim))
        .or_else(|| text(fields.get("claims").and_then(|c| c.get(claim))))?;
    let principal = text(fields.get("principalId"))
        .or_else(|| text(fields.get("claims").and_then(|c| c.get("sub"))))
        .unwrap_or_default();
    Some(Caller {
        tenant_id,
        principal,
    })
}
