//! Every recorded exchange of both Kestra versions against a fresh double: the four transcript
//! files in the recorded order (flows, kv, files, auth-errors), strictly line by line, pauses
//! honoured, status, content type and normalised body compared (violations as sets where the
//! recording says their order is not fixed).
//!
//! Prints `N of M exchanges equal` per version (`cargo test -p kestra-fake --test contract
//! replay_all -- --nocapture`). The only tolerated differences are listed, each with its reason,
//! in `replay_exceptions.txt`; the test fails when an unlisted exchange differs and when a listed
//! one is in fact equal (so the list cannot go stale).

use std::collections::BTreeMap;

use crate::replay::{Step, replay_all};

const EXCEPTIONS: &str = include_str!("replay_exceptions.txt");

/// `(version, scenario, step)` -> reason, from [`EXCEPTIONS`].
fn exceptions() -> BTreeMap<(String, String, u64), String> {
    let mut out = BTreeMap::new();
    for (n, line) in EXCEPTIONS.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.splitn(3, ' ');
        let (Some(version), Some(at), Some(reason)) = (words.next(), words.next(), words.next())
        else {
            panic!(
                "replay_exceptions.txt:{}: `version scenario#step reason`",
                n + 1
            );
        };
        let (scenario, step) = at
            .rsplit_once('#')
            .unwrap_or_else(|| panic!("replay_exceptions.txt:{}: scenario#step", n + 1));
        let step: u64 = step
            .parse()
            .unwrap_or_else(|_| panic!("replay_exceptions.txt:{}: step number", n + 1));
        assert!(
            !reason.trim().is_empty(),
            "replay_exceptions.txt:{}: an exception needs a reason",
            n + 1
        );
        let key = (version.to_owned(), scenario.to_owned(), step);
        assert!(
            out.insert(key, reason.trim().to_owned()).is_none(),
            "replay_exceptions.txt:{}: listed twice",
            n + 1
        );
    }
    out
}

async fn replay_version(version: &str) {
    let Some(steps) = replay_all(version).await else {
        return;
    };
    let listed = exceptions();
    let total = steps.len();
    let equal = steps.iter().filter(|(_, s)| s.matches()).count();
    println!("{version}: {equal} of {total} exchanges equal");

    let key = |s: &Step| (version.to_owned(), s.scenario.clone(), s.step);
    let unexpected: Vec<String> = steps
        .iter()
        .filter(|(_, s)| !s.matches() && !listed.contains_key(&key(s)))
        .map(|(file, s)| format!("[{file}] {}", s.describe()))
        .collect();
    let stale: Vec<String> = steps
        .iter()
        .filter(|(_, s)| s.matches() && listed.contains_key(&key(s)))
        .map(|(file, s)| format!("[{file}] {}#{} is equal now", s.scenario, s.step))
        .collect();
    let replayed: Vec<_> = steps.iter().map(|(_, s)| key(s)).collect();
    let unknown: Vec<String> = listed
        .keys()
        .filter(|k| k.0 == version && !replayed.contains(k))
        .map(|k| format!("{}#{} is not in the recording", k.1, k.2))
        .collect();
    assert!(
        unexpected.is_empty() && stale.is_empty() && unknown.is_empty(),
        "{version}: {} exchange(s) differ from the recording without an exception:\n{}\n\
         {} exception(s) of replay_exceptions.txt are stale:\n{}\n{}",
        unexpected.len(),
        unexpected.join("\n"),
        stale.len() + unknown.len(),
        stale.join("\n"),
        unknown.join("\n"),
    );
}

#[tokio::test]
async fn every_exchange_of_1_3_31() {
    replay_version("1.3.31").await;
}

#[tokio::test]
async fn every_exchange_of_2_0_0() {
    replay_version("2.0.0").await;
}
