//! Retrieval (issue 17) against the local stack: documents cut into chunks and embedded through
//! the real bedrockruntime client, by the Bedrock stand-in's Titan V2 and Cohere v3.

use bedrock_standin::Control;
use bedrock_standin::converse::Behaviour;
use promptseal::context::chunk::{ChunkBudget, split};
use promptseal::context::document;
use promptseal::context::embed::{EmbedError, Embedder, EmbeddingModel, Purpose};
use promptseal::context::search::VectorIndex;

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

/// recall@4 of the section that answers each question of `questions`, over the corpus in
/// tests/data/retrieval/docs: every file read, cut into chunks, embedded and indexed, each
/// question embedded and searched.
async fn recall_at_4(model_id: &str, dimensions: Option<u32>, questions: &str) -> (f64, usize) {
    let dir = common::root().join("tests/data/retrieval");
    let mut paths: Vec<_> = std::fs::read_dir(dir.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let chunks: Vec<_> = paths
        .iter()
        .flat_map(|p| split(&document::read(p).unwrap().text, ChunkBudget::default()))
        .collect();
    let embedder = embedder(model_id, dimensions).await;
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    let vectors = embedder
        .embed(&texts, Purpose::Document)
        .await
        .unwrap()
        .vectors;
    let index = VectorIndex::build(
        embedder.model().dimensions() as usize,
        vectors.iter().map(Vec::as_slice),
    )
    .unwrap();
    let labelled: Vec<serde_json::Value> = std::fs::read_to_string(dir.join(questions))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut found = 0;
    for q in &labelled {
        let (question, section) = (q["question"].as_str().unwrap(), &q["section"]);
        assert!(
            chunks.iter().any(|c| c.section == *section),
            "{questions}: no chunk of section {section}"
        );
        let query = embedder.embed(&[question], Purpose::Query).await.unwrap();
        let hits = index.search(&query.vectors[0], 4, -1.0);
        if hits.iter().any(|h| chunks[h.index].section == *section) {
            found += 1;
        }
    }
    (found as f64 / labelled.len() as f64, labelled.len())
}

/// The labelled corpus: recall@4 on its test questions. The tuning questions are the ones to
/// adjust chunking or the stand-in against; the figure quoted is the test part's. With the
/// stand-in's hashed-feature embeddings it measures the pipeline (reading, chunking, embedding
/// calls, search), not a real model.
#[tokio::test]
async fn the_labelled_corpus_finds_the_answering_section_in_the_top_4() {
    for (model, dimensions) in [
        ("amazon.titan-embed-text-v2:0", Some(1024)),
        ("cohere.embed-english-v3", None),
    ] {
        let (tune, _) = recall_at_4(model, dimensions, "questions_tune.jsonl").await;
        let (test, n) = recall_at_4(model, dimensions, "questions_test.jsonl").await;
        eprintln!("{model}: recall@4 tune {tune:.3}, test {test:.3} ({n} test questions)");
        assert!(
            test >= 0.8,
            "{model}: recall@4 on the test questions {test:.3}"
        );
    }
}
