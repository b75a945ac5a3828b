//! Tests of the runtime: the executor on a paused (virtual) clock with a recording toolbox.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod backlog;
mod browser;
mod control;
mod diagnose;
mod elasticsearch;
mod engine;
mod executor;
mod history;
mod hostile;
mod http;
mod jaeger;
mod journal;
mod kubernetes;
mod pages;
mod postgres_store;
mod prometheus;
mod served;
mod server;
mod smtp;
mod sources;
mod support;
mod web;
