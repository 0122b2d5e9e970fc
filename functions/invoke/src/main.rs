//! invoke: the buffered endpoint (`POST /v1/invoke`) behind lambda_http.

use lambda_http::{Error, service_fn};

use invoke::handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = invoke::wiring::deps("invoke").await?;
    lambda_http::run(service_fn(move |request| handler::handle(deps, request))).await
}
