//! `context ingest` refuses to embed while Bedrock's invocation logging would record the
//! documents. The emulator holds one logging configuration per account, so this scenario runs in
//! its own test target.

use std::process::Command;

use aws_sdk_bedrock::types::{LoggingConfig, S3Config};

#[tokio::test]
async fn ingestion_waits_until_no_invocation_log_would_record_the_documents() {
    let (config, resources) = promptseal_devstack::fresh_resources().await;
    let dir = std::env::temp_dir().join(promptseal_devstack::unique_name("context-logging"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kb.md"), "# Refunds\n\nRefunds take five days.").unwrap();
    let ingest = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_promptseal"))
            .args(["context", "ingest", "--collection", "kb", "--isv", "kb.md"])
            .args(extra)
            .envs(resources.env())
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let bedrock = aws_sdk_bedrock::Client::new(&config);
    let stored = || async {
        aws_sdk_dynamodb::Client::new(&config)
            .scan()
            .table_name(resources.table("ContextTable"))
            .send()
            .await
            .unwrap()
            .count()
    };

    // Text delivery off, embedding delivery on: the documents' vectors would still be logged.
    let vectors_logged = LoggingConfig::builder()
        .s3_config(S3Config::builder().bucket_name("isv-logs").build().unwrap())
        .text_data_delivery_enabled(false)
        .embedding_data_delivery_enabled(true)
        .build();
    bedrock
        .put_model_invocation_logging_configuration()
        .logging_config(vectors_logged)
        .send()
        .await
        .unwrap();
    let refused = ingest(&[]);
    let stderr = String::from_utf8_lossy(&refused.stderr).to_string();
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("invocation_logging_enabled") && stderr.contains("s3:isv-logs"),
        "{stderr}"
    );
    assert_eq!(stored().await, 0, "nothing stored");
    // The operator may decide otherwise, explicitly.
    let allowed = ingest(&["--allow-invocation-logging"]);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );

    // Logging off: ingested without the flag.
    bedrock
        .delete_model_invocation_logging_configuration()
        .send()
        .await
        .unwrap();
    std::fs::write(dir.join("kb.md"), "# Refunds\n\nRefunds take six days.").unwrap();
    let ok = ingest(&[]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
