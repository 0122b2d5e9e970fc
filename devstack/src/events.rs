//! Events for the functions' tests and the demo, as Lambda delivers them.

use crate::ACCOUNT_ID;

/// A CloudWatch Logs subscription event delivering `messages` from Bedrock's invocation log
/// group, as Lambda receives it: the payload (aws_lambda_events' `LogData`) gzipped and base64
/// encoded under `awslogs.data`.
pub fn subscription_event(messages: &[String]) -> serde_json::Value {
    use aws_lambda_events::event::cloudwatch_logs::{LogData, LogEntry};
    use base64::Engine;
    use std::io::Write;
    let mut data = LogData::default();
    data.message_type = "DATA_MESSAGE".into();
    data.owner = ACCOUNT_ID.into();
    data.log_group = "/aws/bedrock/modelinvocations".into();
    data.log_stream = "aws/bedrock/modelinvocations".into();
    data.subscription_filters = vec!["promptseal-redact-log".into()];
    data.log_events = messages
        .iter()
        .enumerate()
        .map(|(i, message)| {
            let mut entry = LogEntry::default();
            entry.id = i.to_string();
            entry.message = message.clone();
            entry
        })
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&serde_json::to_vec(&data).expect("log data serialises"))
        .expect("writing to memory");
    let gz = gz.finish().expect("writing to memory");
    let encoded = base64::engine::general_purpose::STANDARD.encode(gz);
    serde_json::json!({ "awslogs": { "data": encoded } })
}
