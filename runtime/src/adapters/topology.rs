//! `[topology]`: the service graph a team declares in medic.toml, a first-class source of
//! dependencies beside Jaeger's (whose `/api/dependencies` is empty on Elasticsearch-backed
//! Jaeger unless a dependencies job ran).

use std::collections::{BTreeMap, BTreeSet};

/// Each service and the services it calls (its downstream dependencies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    pub calls: BTreeMap<String, BTreeSet<String>>,
}

impl Topology {
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The services `service` calls, in name order.
    pub fn downstream(&self, service: &str) -> impl Iterator<Item = &str> {
        self.calls
            .get(service)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// The services that call `service`, in name order.
    pub fn upstream<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.calls
            .iter()
            .filter(move |(_, callees)| callees.contains(service))
            .map(|(caller, _)| caller.as_str())
    }
}
