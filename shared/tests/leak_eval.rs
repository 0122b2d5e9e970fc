//! The leak guard against its labelled evaluation set (`tests/data/leak_eval.jsonl`, written by
//! `tools/gen_leak_eval.py`): recall per leak form and the false-positive rate on benign on-topic
//! replies, checked against the targets. `cargo test -p promptseal --test leak_eval -- --nocapture`
//! prints the table that README.md quotes.

use std::collections::{BTreeMap, HashMap};

use promptseal::leak::{Fingerprints, LeakGuard, Scanner};
use serde::Deserialize;

#[derive(Deserialize)]
struct Header {
    templates: HashMap<String, String>,
    min_span: u32,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    template: String,
    form: String,
    leak: bool,
    text: String,
}

/// Forms held to the verbatim target; every other leak form is a disguise.
const VERBATIM: [&str; 3] = ["verbatim", "near_verbatim", "partial"];
const VERBATIM_RECALL: f64 = 0.99;
const DISGUISED_RECALL: f64 = 0.95;
const MAX_FALSE_POSITIVE_RATE: f64 = 0.005;

#[derive(Default)]
struct Tally {
    cases: usize,
    flagged: usize,
    missed: Vec<String>,
}

#[test]
fn recall_and_false_positives_meet_the_targets() {
    let data = include_str!("data/leak_eval.jsonl");
    let mut lines = data.lines();
    let header: Header = serde_json::from_str(lines.next().unwrap()).unwrap();
    let fingerprints: HashMap<&str, Fingerprints> = header
        .templates
        .iter()
        .map(|(name, text)| {
            let fp = Fingerprints::of_template(
                [text.as_str()],
                LeakGuard {
                    min_span: header.min_span,
                    ..LeakGuard::default()
                },
                [7; 16],
            );
            (name.as_str(), fp)
        })
        .collect();

    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for line in lines {
        let case: Case = serde_json::from_str(line).unwrap();
        let found = !Scanner::new(&fingerprints[case.template.as_str()])
            .scan(&case.text)
            .is_empty();
        let tally = tallies.entry(case.form.clone()).or_default();
        tally.cases += 1;
        if found {
            tally.flagged += 1;
        }
        if found != case.leak {
            tally.missed.push(case.id);
        }
    }
    let total: usize = tallies.values().map(|t| t.cases).sum();
    assert!(total >= 500, "the set has {total} cases");

    println!("| form | cases | flagged | recall / false-positive rate | target |");
    println!("| --- | ---: | ---: | ---: | --- |");
    let mut failures = Vec::new();
    for (form, t) in &tallies {
        let rate = t.flagged as f64 / t.cases as f64;
        let (label, ok, target) = if form == "benign" {
            (
                "false positives",
                rate <= MAX_FALSE_POSITIVE_RATE,
                "<= 0.5 %",
            )
        } else if VERBATIM.contains(&form.as_str()) {
            ("recall", rate >= VERBATIM_RECALL, ">= 99 %")
        } else {
            ("recall", rate >= DISGUISED_RECALL, ">= 95 %")
        };
        println!(
            "| {form} | {} | {} | {label} {:.1} % | {target} |",
            t.cases,
            t.flagged,
            rate * 100.0
        );
        if !ok {
            failures.push(format!("{form}: {label} {rate:.3}, wrong: {:?}", t.missed));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
