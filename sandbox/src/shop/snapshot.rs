//! What [`super::Shop::snapshot`] and `GET /control/state` answer: the world as of the
//! last tick, for the demo to show and tests to check.

use super::model::Incident;
use super::{Inner, logs};
use crate::promql::Labels;
use serde::Serialize;
use std::collections::BTreeMap;

/// The world as of the last tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub at: String,
    pub at_ms: i64,
    pub services: BTreeMap<String, ServiceSnapshot>,
    /// The logging node's disk, used share.
    pub disk_used: f64,
    pub databases: BTreeMap<String, DatabaseSnapshot>,
    pub incidents: Vec<IncidentSnapshot>,
    pub alerts: Vec<AlertSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSnapshot {
    /// `None` for what is not a deployment.
    pub replicas: Option<i32>,
    /// Requests per second.
    pub load: f64,
    /// CPU per pod as a share of its limit; `None` for what is not a deployment.
    pub cpu: Option<f64>,
    /// The model's p99 latency, end to end.
    pub p99_ms: f64,
    pub error_rate: f64,
    pub healthy: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatabaseSnapshot {
    pub connections: f64,
    pub max_connections: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentSnapshot {
    pub incident: Incident,
    pub started_at: String,
    /// `None`: until cleaned up or ended.
    pub ends_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertSnapshot {
    pub name: String,
    pub labels: Labels,
    pub value: String,
    pub since: String,
}

impl Inner {
    pub(super) fn snapshot(&self) -> Snapshot {
        let world = self.lock();
        let state = world.last.clone();
        let at_ms = state.as_ref().map_or(0, |state| state.at_ms);
        let services = state
            .as_ref()
            .map(|state| {
                state
                    .services
                    .iter()
                    .map(|(name, current)| {
                        (
                            name.to_string(),
                            ServiceSnapshot {
                                replicas: current.replicas,
                                load: current.load,
                                cpu: current.cpu,
                                p99_ms: current.p99_ms(),
                                error_rate: current.error_share,
                                healthy: current.healthy,
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let databases = state
            .as_ref()
            .map(|state| {
                state
                    .databases
                    .iter()
                    .map(|(name, current)| {
                        (
                            name.to_string(),
                            DatabaseSnapshot {
                                connections: current.active + current.idle,
                                max_connections: current.max_connections,
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let incidents = world
            .incidents
            .iter()
            .map(|(incident, running)| IncidentSnapshot {
                incident: *incident,
                started_at: logs::rfc3339(running.started_ms),
                ends_at: running.ends_ms.map(logs::rfc3339),
            })
            .collect();
        let alerts = world
            .evaluator
            .firing()
            .into_iter()
            .map(|alert| AlertSnapshot {
                name: alert.labels.get("alertname").cloned().unwrap_or_default(),
                value: alert.annotations.get("value").cloned().unwrap_or_default(),
                since: logs::rfc3339(alert.fired_at_ms.unwrap_or(alert.active_at_ms)),
                labels: alert.labels,
            })
            .collect();
        Snapshot {
            at: logs::rfc3339(at_ms),
            at_ms,
            services,
            disk_used: state
                .as_ref()
                .map_or(world.model.disk_used, |state| state.disk_used),
            databases,
            incidents,
            alerts,
        }
    }
}
