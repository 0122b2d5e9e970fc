//! Retrieval (issue 17) against the local stack: documents cut into chunks and embedded through
//! the real bedrockruntime client, by the Bedrock stand-in's Titan V2 and Cohere v3.

use bedrock_standin::Control;
use bedrock_standin::converse::Behaviour;
use promptseal::context::chunk::{ChunkBudget, split};
use promptseal::context::embed::{EmbedError, Embedder, EmbeddingModel, Purpose};

mod common;

async fn embedder(model_id: &str, dimensions: Option<u32>) -> Embedder {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Embedder::new(
        aws_sdk_bedrockruntime::Client::new(&config),
        EmbeddingModel::new(model_id, dimensions).unwrap(),
    )
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

const HANDBOOK: &str = "# Billing\n\nInvoices are sent on the first business day of each month.\n\n\
# Accounts\n\nTo reset a forgotten password, open Settings and choose Reset password.\n\n\
# Shipping\n\nOrders ship within two days; tracking numbers arrive by email.\n";

#[tokio::test]
async fn a_query_finds_the_chunk_that_answers_it() {
    let chunks = split(HANDBOOK, ChunkBudget::default());
    assert_eq!(chunks.len(), 3);
    for (model, dimensions) in [
        ("amazon.titan-embed-text-v2:0", Some(256)),
        ("cohere.embed-english-v3", None),
    ] {
        let embedder = embedder(model, dimensions).await;
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        let documents = embedder.embed(&texts, Purpose::Document).await.unwrap();
        assert_eq!(documents.vectors.len(), 3);
        for (query, expected) in [
            ("when are invoices sent", "Billing"),
            ("how do I reset my password", "Accounts"),
            ("where is the tracking number for my order", "Shipping"),
        ] {
            let q = embedder.embed(&[query], Purpose::Query).await.unwrap();
            let best = (0..3)
                .max_by(|&a, &b| {
                    dot(&q.vectors[0], &documents.vectors[a])
                        .total_cmp(&dot(&q.vectors[0], &documents.vectors[b]))
                })
                .unwrap();
            assert_eq!(chunks[best].section, expected, "{model}: {query}");
        }
    }
}

#[tokio::test]
async fn cohere_batches_keep_every_text_in_order() {
    let cohere = embedder("cohere.embed-english-v3", None).await;
    let texts: Vec<String> = (0..100).map(|i| format!("document number {i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let all = cohere.embed(&refs, Purpose::Document).await.unwrap();
    assert_eq!(all.vectors.len(), 100);
    assert_eq!(all.input_tokens, None);
    let last = cohere.embed(&refs[99..], Purpose::Document).await.unwrap();
    assert_eq!(all.vectors[99], last.vectors[0]);
    let titan = embedder("amazon.titan-embed-text-v2:0", Some(512)).await;
    let one = titan.embed(&refs[..2], Purpose::Document).await.unwrap();
    assert_eq!(one.vectors[1].len(), 512);
    assert_eq!(one.input_tokens, Some(6));
}

#[tokio::test]
async fn a_failing_model_is_an_error_not_a_vector() {
    // A model id of the test's own, so that making it throttle disturbs no other test.
    let model = "amazon.titan-embed-text-v2:0-throttled-for-a-test";
    Control::new(common::bedrock_endpoint())
        .set_behaviour(
            model,
            &Behaviour {
                throttle: true,
                ..Behaviour::default()
            },
        )
        .unwrap();
    let err = embedder(model, None)
        .await
        .embed(&["anything"], Purpose::Query)
        .await
        .unwrap_err();
    assert!(matches!(err, EmbedError::Model(_)), "{err:?}");
}
