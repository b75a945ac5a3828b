//! The dependency walk on a fixed subset of the generated scenario suite: the injected
//! service is named in nearly every fault case, and no-fault cases are inconclusive. The
//! full measurement is `cargo run --release -p medic-analysis --example rca_accuracy`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use medic_analysis::diagnosis::{Confidence, EvidenceKind, Settings, diagnose};
use medic_analysis::scenarios::{FaultKind, Options, generate, suite};
use std::collections::BTreeSet;

#[test]
fn a_fixed_subset_finds_the_injected_service() {
    for shift in [0, 60, -60] {
        let mut faults = 0;
        let mut first = 0;
        let mut quiet = 0;
        let mut inconclusive = 0;
        for scenario in suite(1..21, shift) {
            let found = diagnose(&scenario.input, &Settings::default());
            match &scenario.root_cause {
                Some(truth) => {
                    faults += 1;
                    first += usize::from(found.root_cause.as_ref() == Some(truth));
                }
                None => {
                    quiet += 1;
                    inconclusive += usize::from(found.root_cause.is_none());
                }
            }
        }
        assert_eq!(faults, 120);
        assert!(
            first >= 108,
            "shift {shift}: {first} of {faults} named first"
        );
        assert!(
            inconclusive >= 18,
            "shift {shift}: {inconclusive} of {quiet} inconclusive"
        );
    }
}

#[test]
fn a_database_saturation_is_named_with_two_kinds_of_evidence() {
    let scenario = generate(Options {
        seed: 11,
        fault: Some(FaultKind::DatabaseSaturation),
        shift_seconds: 0,
    });
    let found = diagnose(&scenario.input, &Settings::default());
    assert_eq!(found.root_cause, scenario.root_cause, "{found:#?}");
    let best = &found.candidates[0];
    let kinds: BTreeSet<EvidenceKind> = best.evidence.iter().map(|e| e.kind).collect();
    assert!(kinds.len() >= 2, "{:#?}", best.evidence);
    assert_eq!(found.confidence, Some(Confidence::High));
    assert_eq!(found.path.first(), Some(&scenario.input.alerted));
    assert!(found.path.contains(&best.service));
    assert!(
        found.summary.contains(&best.service) && found.summary.contains("connections"),
        "{}",
        found.summary
    );
}

#[test]
fn a_slow_callee_behind_a_healthy_caller_is_named() {
    let mut named = 0;
    for seed in 0..10 {
        let scenario = generate(Options {
            seed,
            fault: Some(FaultKind::SlowCalleeBehindHealthyCaller),
            shift_seconds: 60,
        });
        let found = diagnose(&scenario.input, &Settings::default());
        named += usize::from(found.root_cause == scenario.root_cause);
    }
    assert!(named >= 8, "{named} of 10");
}

#[test]
fn the_same_input_gives_the_same_diagnosis() {
    let scenario = generate(Options {
        seed: 3,
        fault: Some(FaultKind::Latency),
        shift_seconds: 0,
    });
    let first = diagnose(&scenario.input, &Settings::default());
    let again = diagnose(&scenario.input, &Settings::default());
    assert_eq!(first, again);
    assert_eq!(
        serde_json::to_string(&first).unwrap(),
        serde_json::to_string(&again).unwrap()
    );
}

#[test]
fn every_scenario_is_a_fair_question() {
    for scenario in suite(1..31, 60) {
        let input = &scenario.input;
        assert!(input.services.len() >= 12, "{:?}", input.services.keys());
        let kinds: BTreeSet<_> = input.services.values().map(|data| data.kind).collect();
        assert_eq!(kinds.len(), 3, "a service, a database and a cache");
        let Some(root) = &scenario.root_cause else {
            continue;
        };
        assert!(!scenario.distractors.contains(root));
        // The injected service is the alerted one or downstream of it within the depth.
        let mut reached = BTreeSet::from([input.alerted.clone()]);
        for _ in 0..input.depth {
            let next: Vec<String> = reached
                .iter()
                .flat_map(|service| input.calls.get(service).into_iter().flatten().cloned())
                .collect();
            reached.extend(next);
        }
        assert!(
            reached.contains(root),
            "{root} is not within {} hops of {}",
            input.depth,
            input.alerted
        );
    }
}
