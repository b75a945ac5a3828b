//! `medic test`: the `test` blocks of `.ops` files, run on the real engine (matching,
//! admission, execution, journal) with the standard library's calls answered by the
//! tests' mocks and time moved by the tests' timelines on a paused clock
//! (docs/notes/026-medic-test-design.md).
//!
//! - [`mock`]: the toolbox of mocks and the log of calls;
//! - [`drive`]: one test on its own runtime, and what the engine did;
//! - [`expect`]: the expectations against it;
//! - [`coverage`]: which rules, `when`s and tasks the tests exercised;
//! - [`render`]: human, JSON and JUnit output.

pub mod coverage;
pub mod drive;
pub mod expect;
pub mod mock;
pub mod render;

use medic_compiler::plan::Plan;
use medic_compiler::plan::suite::TestCase;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

pub use expect::Failure;

/// What became of one test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestResult {
    pub file: String,
    pub name: String,
    pub line: u32,
    pub passed: bool,
    pub failures: Vec<Failure>,
    /// What the engine did, one line each: runs with their tasks, suppressions, calls.
    pub trace: Vec<String>,
    /// Wall time the test took.
    pub millis: f64,
    /// What the engine did, for coverage; `None` when the test could not run.
    #[serde(skip)]
    pub observed: Option<drive::Observed>,
}

/// Runs one test with a journal of its own.
pub fn run_case(plan: Arc<Plan>, case: &TestCase) -> TestResult {
    match drive::journal() {
        Ok(journal) => run_with(plan, case, &journal),
        Err(error) => failed(case, error),
    }
}

fn failed(case: &TestCase, error: String) -> TestResult {
    TestResult {
        file: case.source.file.clone(),
        name: case.name.clone(),
        line: case.source.line,
        passed: false,
        failures: vec![Failure {
            line: None,
            message: error,
        }],
        trace: Vec::new(),
        millis: 0.0,
        observed: None,
    }
}

/// Runs one test on a journal (cleared first) that the thread reuses.
fn run_with(
    plan: Arc<Plan>,
    case: &TestCase,
    journal: &medic_runtime::journal::JournalHandle,
) -> TestResult {
    let started = Instant::now();
    let (failures, trace, observed) = match drive::observe(plan, case, journal) {
        Ok(observed) => (
            expect::failures(case, &observed),
            render::trace(&observed),
            Some(observed),
        ),
        Err(error) => (
            vec![Failure {
                line: None,
                message: error,
            }],
            Vec::new(),
            None,
        ),
    };
    TestResult {
        file: case.source.file.clone(),
        name: case.name.clone(),
        line: case.source.line,
        passed: failures.is_empty(),
        failures,
        trace,
        millis: started.elapsed().as_secs_f64() * 1000.0,
        observed,
    }
}

/// Runs tests on `jobs` threads (each test on its own runtime); results in the order given.
pub fn run_all(plan: Arc<Plan>, cases: &[TestCase], jobs: usize) -> Vec<TestResult> {
    let next = AtomicUsize::new(0);
    let jobs = jobs.clamp(1, cases.len().max(1));
    let mut results: Vec<(usize, TestResult)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                let plan = plan.clone();
                let next = &next;
                scope.spawn(move || {
                    let mut done = Vec::new();
                    let journal = drive::journal();
                    loop {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        let Some(case) = cases.get(index) else {
                            break;
                        };
                        let result = match &journal {
                            Ok(journal) => run_with(plan.clone(), case, journal),
                            Err(error) => failed(case, error.clone()),
                        };
                        done.push((index, result));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap_or_default())
            .collect()
    });
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}
