//! Tests of the language server: in-process request/response cases as snapshots, workspace
//! behaviour, robustness, answers on a large generated file, and an end-to-end run with a
//! real Neovim.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod cases;
mod large;
mod session;
mod workspace;
