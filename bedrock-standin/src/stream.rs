//! `ConverseStream`'s answer in Bedrock's wire format: an `application/vnd.amazon.eventstream`
//! body of event messages (`messageStart`, `contentBlockDelta` per piece of the reply,
//! `contentBlockStop`, `messageStop`, `metadata`), each a JSON payload with `:event-type`,
//! `:content-type` and `:message-type` headers; or, cut short, an exception message.

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use serde_json::{Value, json};

use crate::converse::{Behaviour, Reply};

/// Characters per text delta when a model is not configured otherwise.
pub const DEFAULT_DELTA_CHARS: usize = 20;

/// The reply's text in the pieces a stream carries: `size` characters each (the last shorter),
/// never splitting a character.
pub fn deltas(text: &str, size: usize) -> Vec<&str> {
    let size = size.max(1);
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest
            .char_indices()
            .nth(size)
            .map_or(rest.len(), |(at, _)| at);
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// The event messages of one streamed reply, in order. A model set to fail mid-stream
/// (`stream_error_after`) sends that many deltas, then a `modelStreamErrorException`.
pub fn messages(reply: &Reply, behaviour: &Behaviour, latency_ms: u64) -> Vec<Message> {
    let size = behaviour.delta_chars.unwrap_or(DEFAULT_DELTA_CHARS);
    let mut out = vec![event("messageStart", json!({ "role": "assistant" }))];
    for (i, piece) in deltas(&reply.text, size).into_iter().enumerate() {
        if behaviour.stream_error_after == Some(i) {
            out.push(exception(
                "modelStreamErrorException",
                "The model stopped while streaming its answer.",
            ));
            return out;
        }
        out.push(event(
            "contentBlockDelta",
            json!({ "contentBlockIndex": 0, "delta": { "text": piece } }),
        ));
    }
    out.push(event("contentBlockStop", json!({ "contentBlockIndex": 0 })));
    out.push(event(
        "messageStop",
        json!({ "stopReason": reply.stop_reason }),
    ));
    let body = reply.to_json(latency_ms);
    let mut metadata = json!({ "usage": body["usage"], "metrics": body["metrics"] });
    if let Some(trace) = body.get("trace") {
        metadata["trace"] = trace.clone();
    }
    out.push(event("metadata", metadata));
    out
}

/// Whether a message carries a piece of the reply's text.
pub fn is_delta(message: &Message) -> bool {
    message.headers().iter().any(|h| {
        h.name().as_str() == ":event-type"
            && h.value()
                .as_string()
                .is_ok_and(|v| v.as_str() == "contentBlockDelta")
    })
}

/// One message as its bytes on the wire (prelude, headers, payload, CRCs).
pub fn encode(message: &Message) -> Vec<u8> {
    let mut bytes = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(message, &mut bytes)
        .expect("a message of JSON and short headers always encodes");
    bytes
}

fn event(event_type: &'static str, payload: Value) -> Message {
    Message::new(payload.to_string().into_bytes())
        .add_header(header(":event-type", event_type))
        .add_header(header(":content-type", "application/json"))
        .add_header(header(":message-type", "event"))
}

fn exception(exception_type: &'static str, message: &str) -> Message {
    Message::new(json!({ "message": message }).to_string().into_bytes())
        .add_header(header(":exception-type", exception_type))
        .add_header(header(":content-type", "application/json"))
        .add_header(header(":message-type", "exception"))
}

fn header(name: &'static str, value: &'static str) -> Header {
    Header::new(name, HeaderValue::String(value.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_cover_the_text_in_order_without_splitting_a_character() {
        let text = "Grüße aus Köln — ein schöner Tag, nicht wahr?";
        for size in [1, 3, 7, 20, 1000] {
            let pieces = deltas(text, size);
            assert_eq!(pieces.concat(), text);
            assert!(pieces.iter().all(|p| p.chars().count() <= size));
            assert!(
                pieces[..pieces.len() - 1]
                    .iter()
                    .all(|p| p.chars().count() == size)
            );
        }
        assert!(deltas("", 5).is_empty());
    }
}
