//! The engine that runs checked programs when alerts arrive (`medic serve`, `medic run`).
//!
//! This crate builds on `medic-compiler`. So far it holds alert normalization: reading the
//! loosely typed fields that monitoring systems send (severity labels, the `value`
//! annotation) into the typed values the language promises (`Severity`, `Quantity`).
//! Ingest, dedupe, the journal and the executor come with the runtime issue.

pub mod normalize;
