//! The engine that runs checked programs when alerts arrive (`medic serve`, `medic run`).
//!
//! The pipeline, one module each: `ingest` reads Alertmanager, Grafana, Zabbix and generic
//! webhook payloads, with `normalize` for the loosely typed fields (severity spellings, the
//! `value` with its unit), into typed alerts; `server` is the axum face (webhooks, runs
//! API, auth, limits); `engine` makes alerts durable, matches them against the plan, admits
//! runs (one per rule per firing episode, cooldowns, concurrency, kill switch) and handles
//! resolved alerts, reverts and crash recovery; `executor` runs one playbook's DAG behind the
//! `Toolbox`, `Observer` and `ActionGate` traits; `journal` is the SQLite store with group
//! commit; `adapters` holds the built-in toolbox (HTTP, webhook notifications); `report`
//! renders a run for people; `metrics` is the Prometheus registry; `stats` computes each
//! playbook's effectiveness from the journal's history; `web` is the on-call page.

pub mod adapters;
pub mod engine;
pub mod executor;
mod guardrails;
pub mod ingest;
pub mod journal;
pub mod metrics;
pub mod normalize;
pub mod report;
pub mod run_filter;
pub mod server;
pub mod sns;
pub mod stats;
pub mod web;
