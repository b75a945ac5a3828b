//! Pure analysis: what Medic concludes from data, with no I/O, no clock and no async, so
//! every conclusion is tested on data and reused by the runtime's adapters, `medic logs` and
//! `medic demo`.
//!
//! - `logs`: log template mining (Drain-style), baseline comparison, stack traces.
//! - `anomaly` and `diagnosis`: robust anomaly scores against a service's own past, and the
//!   dependency walk's reasoning (which service's anomaly its own dependencies do not
//!   explain).

pub mod anomaly;
pub mod diagnosis;
pub mod logs;
pub mod scenarios;
pub mod stack;
