//! Tests of the language server: in-process request/response cases as snapshots, workspace
//! behaviour, robustness, and answers on a large generated file. The end-to-end run with a
//! real Neovim is in the CLI's tests (`cli/tests/cli/neovim.rs`), which build `medic`.
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
