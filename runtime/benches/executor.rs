//! Executor overhead: a 10,000-task DAG of no-op tasks (each task waits for one earlier
//! task, so the graph is a tree about log2(n) deep with wide levels). Targets: under 0.5 s
//! for the whole DAG, under 50 µs per task.
//!
//! Run with `cargo bench -p medic-runtime --bench executor`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark"
)]

use medic_compiler::plan::{self, Effect, Loc, OnFailure, Value};
use medic_runtime::executor::{self, CallFuture, RunOptions, RunOutcome, Toolbox};
use std::collections::BTreeMap;
use std::sync::Arc;

fn main() {
    divan::main();
}

struct NoOp;

impl Toolbox for NoOp {
    fn call(&self, _function: &str, _args: BTreeMap<String, Value>) -> CallFuture {
        Box::pin(async { Ok(Value::Null) })
    }
}

fn playbook(size: usize) -> plan::Playbook {
    let loc = Loc {
        file: "bench.ops".into(),
        line: 1,
        column: 1,
        start: 0,
        end: 0,
    };
    let tasks = (0..size)
        .map(|index| plan::Task {
            id: format!("t{index}"),
            source: loc.clone(),
            function: "http.get".into(),
            effect: Effect::Query,
            revertible: false,
            args: BTreeMap::new(),
            when: None,
            retry: None,
            timeout_ms: None,
            on_failure: OnFailure::Abort,
            approval: None,
            revert_after_ms: None,
            revert_on_resolve: false,
            depends_on: if index == 0 {
                Vec::new()
            } else {
                vec![format!("t{}", (index - 1) / 2)]
            },
        })
        .collect();
    plan::Playbook {
        name: "bench".into(),
        source: loc,
        params: Vec::new(),
        timeout_ms: None,
        tasks,
        edges: Vec::new(),
    }
}

#[divan::bench(args = [1_000, 10_000], sample_count = 10)]
fn no_op_dag(bencher: divan::Bencher, size: usize) {
    // Timers on: every run has a deadline (the default playbook timeout).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let playbook = playbook(size);
    let toolbox: Arc<dyn Toolbox> = Arc::new(NoOp);
    bencher
        .counter(divan::counter::ItemsCount::new(size))
        .bench_local(|| {
            let report = runtime.block_on(executor::run(
                &playbook,
                BTreeMap::new(),
                Arc::clone(&toolbox),
                RunOptions::default(),
            ));
            assert_eq!(report.outcome, RunOutcome::Succeeded);
            report
        });
}
