//! The leak guard against its labelled evaluation (`tests/data/leak_eval_{tune,test}.jsonl`,
//! written by `tools/gen_leak_eval.py`): recall per disguise family and group, counted only when a
//! finding overlaps the planted leak, and the false-positive rate per family of benign replies.
//! The scanner is tuned on the tuning part; the test part (other templates, another seed) is the
//! one quoted and checked. `cargo test -p promptseal --test leak_eval -- --nocapture` prints the
//! tables README.md quotes.

use std::collections::{BTreeMap, HashMap};

use promptseal::leak::{Fingerprints, LeakSettings, Scanner};
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
    family: String,
    group: String,
    leak: bool,
    text: String,
    span: Option<(usize, usize)>,
}

/// Targets on the test part (issue 15).
const NEAR_VERBATIM_RECALL: f64 = 0.99;
const DISGUISED_RECALL: f64 = 0.95;
const MAX_FALSE_POSITIVE_RATE: f64 = 0.005;
#[derive(Default)]
struct Tally {
    cases: usize,
    flagged: usize,
    wrong: Vec<String>,
}

impl Tally {
    fn rate(&self) -> f64 {
        self.flagged as f64 / self.cases.max(1) as f64
    }
}

struct Results {
    families: BTreeMap<(String, String), Tally>,
    groups: BTreeMap<String, Tally>,
}

fn evaluate(data: &str) -> Results {
    let mut lines = data.lines();
    let header: Header = serde_json::from_str(lines.next().unwrap()).unwrap();
    let fingerprints: HashMap<&str, Fingerprints> = header
        .templates
        .iter()
        .map(|(name, text)| {
            let settings = LeakSettings {
                min_span: header.min_span,
                ..LeakSettings::default()
            };
            (
                name.as_str(),
                Fingerprints::of_template([text.as_str()], settings, [7; 16]),
            )
        })
        .collect();
    let mut results = Results {
        families: BTreeMap::new(),
        groups: BTreeMap::new(),
    };
    for line in lines {
        let case: Case = serde_json::from_str(line).unwrap();
        let findings = Scanner::new(&fingerprints[case.template.as_str()]).scan(&case.text);
        let flagged = match case.span {
            Some((start, end)) => findings
                .iter()
                .any(|f| f.start < end && f.start + f.len > start),
            None => !findings.is_empty(),
        };
        for tally in [
            results
                .families
                .entry((case.group.clone(), case.family.clone()))
                .or_default(),
            results.groups.entry(case.group.clone()).or_default(),
        ] {
            tally.cases += 1;
            tally.flagged += usize::from(flagged);
            if flagged != case.leak {
                tally.wrong.push(case.id.clone());
            }
        }
        // `LEAK_EVAL_SHOW=family` prints that family's wrong cases (for tuning: use it on the
        // tuning part only).
        if flagged != case.leak
            && std::env::var("LEAK_EVAL_SHOW").is_ok_and(|f| f == case.family)
            && case.id.starts_with("tune")
        {
            println!("{}: {:?}", case.id, case.text);
        }
    }
    results
}

fn print(part: &str, results: &Results) {
    println!("\n{part} part\n");
    println!("| group | family | cases | flagged | rate |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for ((group, family), t) in &results.families {
        println!(
            "| {group} | {family} | {} | {} | {:.1} % |",
            t.cases,
            t.flagged,
            t.rate() * 100.0
        );
    }
    for (group, t) in &results.groups {
        println!(
            "| **{group}** | all | {} | {} | {:.1} % |",
            t.cases,
            t.flagged,
            t.rate() * 100.0
        );
    }
}

#[test]
fn the_test_part_meets_the_targets() {
    let tune = evaluate(include_str!("data/leak_eval_tune.jsonl"));
    let test = evaluate(include_str!("data/leak_eval_test.jsonl"));
    print("tuning", &tune);
    print("test", &test);

    let mut failures = Vec::new();
    for ((group, family), t) in &test.families {
        if group == "benign" && t.rate() > MAX_FALSE_POSITIVE_RATE {
            failures.push(format!(
                "{family}: false positives {:.3}: {:?}",
                t.rate(),
                t.wrong
            ));
        }
    }
    for (group, target) in [
        ("near_verbatim", NEAR_VERBATIM_RECALL),
        ("disguised", DISGUISED_RECALL),
    ] {
        let rate = test.groups[group].rate();
        println!(
            "{group}: recall {:.1} % (target {:.0} %)",
            rate * 100.0,
            target * 100.0
        );
        if rate < target {
            failures.push(format!("{group}: recall {rate:.3} under {target}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
