//! Integration tests of the compiler: one binary, one module per area.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod diagnostics;
mod examples;
mod formatting;
mod incremental;
mod matching;
mod mutation;
mod plans;
mod robustness;
mod stdlib;
mod support;
mod tests_syntax;
