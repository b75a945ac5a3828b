//! The engine that runs checked programs when alerts arrive (`medic serve`, `medic run`).
//!
//! This crate builds on `medic-compiler`. So far it holds ingestion: reading Alertmanager
//! webhook payloads (`ingest`) and the loosely typed fields monitoring systems send
//! (`normalize`: severity spellings, the `value` annotation with its unit) into the typed
//! `alert` record that plans match against. The server, dedupe, the journal and the
//! executor come with the runtime issue.

pub mod ingest;
pub mod normalize;
