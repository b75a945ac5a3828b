//! The engine that runs checked programs when alerts arrive (`medic serve`, `medic run`).
//!
//! This crate builds on `medic-compiler`. So far it holds ingestion: reading Alertmanager
//! webhook payloads (`ingest`) and the loosely typed fields monitoring systems send
//! (`normalize`: severity spellings, the `value` annotation with its unit) into the typed
//! `alert` record that plans match against; and the playbook executor (`executor`: DAG
//! order, concurrency, `when`, timeouts, retries, failure policies, dry runs) behind the
//! `Toolbox` trait; and the SQLite journal (`journal`) with per-episode run deduplication.
//! The server, rate limits, approvals and reverts come next.

pub mod adapters;
pub mod engine;
pub mod executor;
pub mod ingest;
pub mod journal;
pub mod metrics;
pub mod normalize;
pub mod report;
pub mod server;
