//! The language server for `.ops` files (`medic lsp`), built on `medic-compiler` only
//! (never on the runtime).
//!
//! `server.rs` speaks LSP (tower-lsp) and owns the documents; `workspace.rs` turns the open
//! and on-disk files into analyses (all files are checked together, so an edit in one file
//! re-publishes the diagnostics of every file); `features.rs` answers requests from an
//! analysis; `position.rs` converts between byte offsets and UTF-16 positions through line
//! indexes built once per text, so no request rescans a file per position. No request can
//! crash the server: features return `None` on anything unexpected, and a file with syntax
//! errors is navigated with the last analysis in which it parsed.

pub mod features;
pub mod position;
pub mod server;
pub mod workspace;

pub use position::{Lines, Utf16Position, Walker};
pub use server::{run_stdio, service};
