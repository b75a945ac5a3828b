//! Simulated worlds and API-faithful test servers: what tests and `medic demo` talk to in
//! place of real systems that cannot be installed on a laptop (the Kubernetes API, Jaeger,
//! Elasticsearch), and launchers of real servers that can (`prometheus`), on loopback.
//! Never used by the runtime's production paths; depends on no Medic crate, so every
//! crate's tests can use it.

pub mod clock;
pub mod elasticsearch;
pub mod jaeger;
pub mod kubernetes;
pub mod postgres;
pub mod prometheus;
pub mod promql;
pub mod receiver;
mod serving;
pub mod shop;
pub mod sns;
pub mod world;
