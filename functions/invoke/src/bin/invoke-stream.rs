//! invoke-stream: the streamed endpoint (`POST /v1/invoke/stream`), the same request answered as
//! Server-Sent Events, behind lambda_http's streaming response support.

use lambda_http::{Error, service_fn};

use invoke::stream;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let deps = invoke::wiring::deps("invoke-stream").await?;
    lambda_http::run_with_streaming_response(service_fn(move |request| {
        stream::handle(deps, request)
    }))
    .await
}
