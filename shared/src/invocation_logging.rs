//! Bedrock model invocation logging, read as promptseal needs it: which destinations a logging
//! configuration delivers text (or embeddings) to that a deployment does not allow. invoke
//! refuses requests, and the admin CLI refuses to embed documents, while any is left.

use aws_sdk_bedrock::types::LoggingConfig;

/// The destinations a configuration sends text to (or, with `embeddings`, embeddings: a
/// tenant's query embedded for retrieval) that the allow-list does not name. Fails closed: a
/// delivery counts as on unless it is explicitly off. A configuration with no destination
/// delivers nothing.
pub fn disallowed_destinations(
    config: Option<&LoggingConfig>,
    allow: &[String],
    embeddings: bool,
) -> Vec<String> {
    let Some(config) = config else {
        return Vec::new();
    };
    let text = config.text_data_delivery_enabled() != Some(false);
    let vectors = embeddings && config.embedding_data_delivery_enabled() != Some(false);
    if !text && !vectors {
        return Vec::new();
    }
    let mut destinations = Vec::new();
    if let Some(cw) = config.cloud_watch_config() {
        destinations.push(format!("cloudwatch:{}", cw.log_group_name()));
        if let Some(large) = cw.large_data_delivery_s3_config() {
            destinations.push(format!("s3:{}", large.bucket_name()));
        }
    }
    if let Some(s3) = config.s3_config() {
        destinations.push(format!("s3:{}", s3.bucket_name()));
    }
    destinations.retain(|d| !allow.contains(d));
    destinations
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_bedrock::types::{CloudWatchConfig, S3Config};

    fn cloudwatch(group: &str) -> CloudWatchConfig {
        CloudWatchConfig::builder()
            .log_group_name(group)
            .role_arn("arn:aws:iam::123456789012:role/logs")
            .build()
            .unwrap()
    }

    fn s3(bucket: &str) -> S3Config {
        S3Config::builder().bucket_name(bucket).build().unwrap()
    }

    #[test]
    fn text_logging_is_judged_against_the_allow_list() {
        let allow = vec!["cloudwatch:/isv/bedrock".to_owned()];
        let none: Vec<String> = vec![];
        let cases: Vec<(Option<LoggingConfig>, &[String], usize)> = vec![
            (None, &none, 0),
            // Logging on, but text delivery explicitly off.
            (
                Some(
                    LoggingConfig::builder()
                        .cloud_watch_config(cloudwatch("/x"))
                        .text_data_delivery_enabled(false)
                        .build(),
                ),
                &none,
                0,
            ),
            // Text delivery unspecified counts as on.
            (
                Some(LoggingConfig::builder().s3_config(s3("logs")).build()),
                &none,
                1,
            ),
            (
                Some(
                    LoggingConfig::builder()
                        .cloud_watch_config(cloudwatch("/isv/bedrock"))
                        .text_data_delivery_enabled(true)
                        .build(),
                ),
                &allow,
                0,
            ),
            (
                Some(
                    LoggingConfig::builder()
                        .cloud_watch_config(cloudwatch("/isv/bedrock"))
                        .s3_config(s3("other"))
                        .text_data_delivery_enabled(true)
                        .build(),
                ),
                &allow,
                1,
            ),
            // Nothing configured (what an account without logging returns): nothing delivered.
            (Some(LoggingConfig::builder().build()), &none, 0),
        ];
        for (i, (config, allow, expected)) in cases.iter().enumerate() {
            assert_eq!(
                disallowed_destinations(config.as_ref(), allow, false).len(),
                *expected,
                "case {i}"
            );
        }
    }

    #[test]
    fn embedding_logging_counts_only_for_requests_that_embed() {
        let vectors_only = LoggingConfig::builder()
            .s3_config(s3("logs"))
            .text_data_delivery_enabled(false)
            .embedding_data_delivery_enabled(true)
            .build();
        assert!(disallowed_destinations(Some(&vectors_only), &[], false).is_empty());
        assert_eq!(
            disallowed_destinations(Some(&vectors_only), &[], true).len(),
            1
        );
        // Unspecified counts as on.
        let unspecified = LoggingConfig::builder()
            .s3_config(s3("logs"))
            .text_data_delivery_enabled(false)
            .build();
        assert_eq!(
            disallowed_destinations(Some(&unspecified), &[], true).len(),
            1
        );
        let off = LoggingConfig::builder()
            .s3_config(s3("logs"))
            .text_data_delivery_enabled(false)
            .embedding_data_delivery_enabled(false)
            .build();
        assert!(disallowed_destinations(Some(&off), &[], true).is_empty());
    }
}
