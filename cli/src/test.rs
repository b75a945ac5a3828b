//! `medic test`: checks the files, then runs every `test` block on the real engine with
//! mocks and a virtual clock (crate `medic-tester`). Exit 0 when all passed, 1 when a test
//! failed or the files do not check, 2 for a usage error.

use crate::{output, sources};
use medic_tester::render;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFormat {
    /// PASS and FAIL lines, each failure with what differs and what happened.
    Human,
    /// Every test with its failures and trace.
    Json,
    /// JUnit XML, one test suite per file.
    Junit,
}

pub struct TestFlags {
    pub paths: Vec<PathBuf>,
    pub run: Option<String>,
    pub format: TestFormat,
    pub deny_empty: bool,
    pub jobs: Option<usize>,
    pub verbose: bool,
    pub coverage: bool,
    pub coverage_min: Option<f64>,
}

pub fn test(flags: TestFlags) -> anyhow::Result<ExitCode> {
    let sources = match sources::read(&flags.paths) {
        Ok(sources) => sources,
        Err(error) => {
            eprintln!("error: {error:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let file_count = sources.len();
    let analysis = medic_compiler::check(sources);
    let (plan, suite) = match (
        medic_compiler::plan::lower(&analysis),
        medic_compiler::plan::suite::suite(&analysis),
    ) {
        (Ok(plan), Ok(suite)) => (plan, suite),
        (Err(_), _) | (_, Err(medic_compiler::plan::LowerError::HasErrors(_))) => {
            eprint!(
                "{}",
                output::render(&analysis, crate::Format::Human, file_count)
            );
            return Ok(ExitCode::from(1));
        }
        (_, Err(error)) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut tests = suite.tests;
    if let Some(pattern) = &flags.run {
        tests.retain(|test| test.name.contains(pattern.as_str()));
    }
    if flags.deny_empty {
        let paths = if flags.paths.is_empty() {
            vec![PathBuf::from(".")]
        } else {
            flags.paths.clone()
        };
        let empty: Vec<String> = paths
            .iter()
            .filter(|path| {
                !tests
                    .iter()
                    .any(|test| holds(path, Path::new(&test.source.file)))
            })
            .map(|path| path.display().to_string())
            .collect();
        if !empty.is_empty() {
            eprintln!(
                "error: no test{} in {} (--deny-empty)",
                if flags.run.is_some() {
                    " matches --run"
                } else {
                    ""
                },
                empty.join(", ")
            );
            return Ok(ExitCode::from(1));
        }
    }
    let jobs = flags.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let plan = Arc::new(plan);
    let results = medic_tester::run_all(plan.clone(), &tests, jobs);
    let coverage = (flags.coverage || flags.coverage_min.is_some()).then(|| {
        medic_tester::coverage::coverage(
            &plan,
            results.iter().filter_map(|result| result.observed.as_ref()),
        )
    });
    match flags.format {
        TestFormat::Human => {
            print!("{}", render::human(&results, flags.verbose));
            if let Some(coverage) = &coverage {
                print!("{}", medic_tester::coverage::text(coverage));
            }
        }
        TestFormat::Json => println!("{}", render::json(&results, coverage.as_ref())),
        TestFormat::Junit => print!("{}", render::junit(&results)),
    }
    let mut passed = results.iter().all(|result| result.passed);
    if let (Some(minimum), Some(coverage)) = (flags.coverage_min, &coverage)
        && coverage.percent < minimum
    {
        eprintln!(
            "error: coverage {:.1}% is below --coverage-min {minimum}",
            coverage.percent
        );
        passed = false;
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Whether the file a test is in was found under `path` (a file or a directory named on
/// the command line, as `sources::read` names what it finds).
fn holds(path: &Path, file: &Path) -> bool {
    let path = path.strip_prefix("./").unwrap_or(path);
    path == Path::new(".") || file.starts_with(path) || file == path
}
