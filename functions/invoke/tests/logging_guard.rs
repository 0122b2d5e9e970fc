//! The fail-closed logging guard end to end. The emulator holds one invocation-logging
//! configuration per account, so these scenarios live in their own test target and run in order.

mod harness;

use aws_sdk_bedrock::types::{CloudWatchConfig, LoggingConfig, S3Config};
use harness::{World, event};

async fn set_logging(world: &World, config: Option<LoggingConfig>) {
    let bedrock = aws_sdk_bedrock::Client::new(&world.config);
    match config {
        Some(config) => {
            bedrock
                .put_model_invocation_logging_configuration()
                .logging_config(config)
                .send()
                .await
                .unwrap();
        }
        None => {
            bedrock
                .delete_model_invocation_logging_configuration()
                .send()
                .await
                .unwrap();
        }
    }
}

fn cloudwatch_text_logging(s3_too: bool, text: bool) -> LoggingConfig {
    let mut config = LoggingConfig::builder()
        .cloud_watch_config(
            CloudWatchConfig::builder()
                .log_group_name("/isv/bedrock-invocations")
                .role_arn("arn:aws:iam::123456789012:role/bedrock-logging")
                .build()
                .unwrap(),
        )
        .text_data_delivery_enabled(text);
    if s3_too {
        config = config.s3_config(
            S3Config::builder()
                .bucket_name("other-logs")
                .build()
                .unwrap(),
        );
    }
    config.build()
}

#[tokio::test]
async fn invoke_refuses_whenever_text_logging_could_capture_the_prompt() {
    let world = World::new().await;
    world.seed("You are Acme's support assistant.").await;
    let tenant_hosted = world.function(&[]);
    let isv_hosted = world.function(&[
        ("DEPLOYMENT_MODE", "isv-hosted"),
        (
            "LOG_DESTINATION_ALLOW_LIST",
            "cloudwatch:/isv/bedrock-invocations",
        ),
    ]);
    let request = event("http-api-jwt");

    set_logging(&world, None).await;
    assert_eq!(tenant_hosted.invoke(&request).status, 200);

    set_logging(&world, Some(cloudwatch_text_logging(false, true))).await;
    let refused = tenant_hosted.invoke(&request);
    assert_eq!(
        (refused.status, refused.code()),
        (503, "invocation_logging_enabled")
    );
    // The ISV's own log group, which redact-log processes, is allowed in ISV-hosted mode.
    assert_eq!(isv_hosted.invoke(&request).status, 200);

    set_logging(&world, Some(cloudwatch_text_logging(true, true))).await;
    let refused = isv_hosted.invoke(&request);
    assert_eq!(
        (refused.status, refused.code()),
        (503, "invocation_logging_enabled")
    );

    // Logging on, but without text: nothing of the prompt is recorded.
    set_logging(&world, Some(cloudwatch_text_logging(true, false))).await;
    assert_eq!(tenant_hosted.invoke(&request).status, 200);

    set_logging(&world, None).await;
    assert_eq!(tenant_hosted.invoke(&request).status, 200);
    assert_eq!(
        world.model_requests().len(),
        4,
        "refused requests never reached the model"
    );
}
