//! The guardrails the engine puts in front of every action: the kill switch (asked before
//! every attempt) and the global rate limit on actions (counted once per action, at its
//! first attempt; docs/notes/012-guardrails.md).

use crate::executor::{ActionGate, Clock};
use medic_compiler::plan;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The kill switch and the global rate limit on actions, consulted right before each action.
pub(crate) struct Guardrails {
    pub(crate) kill_switch: AtomicBool,
    pub(crate) actions_per_minute: Option<u32>,
    pub(crate) recent: Mutex<VecDeque<i64>>,
    pub(crate) clock: Clock,
    /// On a node of a cluster, its lease: past its local deadline no action starts.
    pub(crate) lease: Option<std::sync::Arc<crate::engine::LeaseClock>>,
}

impl Guardrails {
    fn lease_holds(&self) -> Result<(), String> {
        match &self.lease {
            Some(lease) if !lease.holds() => Err(
                "this node's lease on the store lapsed: it starts no action until it holds one again"
                    .into(),
            ),
            _ => Ok(()),
        }
    }
}

impl ActionGate for Guardrails {
    fn permit(&self, _task: &plan::Task, attempt: u32) -> Result<(), String> {
        if self.kill_switch.load(Ordering::SeqCst) {
            return Err("the kill switch is on: no action may run".into());
        }
        self.lease_holds()?;
        // A retry finishes an action that was already permitted: it is not counted again.
        if attempt > 1 {
            return Ok(());
        }
        // No limit, or 0: no limit (a limit of zero actions is the kill switch's job).
        let Some(limit) = self.actions_per_minute.filter(|limit| *limit > 0) else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let Ok(mut recent) = self.recent.lock() else {
            return Err("the rate limiter is unavailable".into());
        };
        while recent.front().is_some_and(|at| *at <= now - 60_000) {
            recent.pop_front();
        }
        if recent.len() >= limit as usize {
            return Err(format!(
                "rate limited: {limit} actions already ran in the last minute"
            ));
        }
        recent.push_back(now);
        Ok(())
    }

    fn confirm(&self) -> Result<(), String> {
        self.lease_holds()
    }
}
