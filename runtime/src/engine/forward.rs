//! Operators' controls of a run another node runs (issue 14, docs/ha.md): approve, reject,
//! pause, resume and cancel reach a run's task in the memory of its node, so on a cluster a
//! node asked for a run it does not run writes the request to the store
//! (`journal::pg::controls`) and waits for the answer, which the node that owns the run
//! writes after performing it as if it had been asked directly. The node asked writes the
//! audit entry, with the outcome; the owner writes the decision's task events under its
//! lease, as it writes everything for its runs.

use super::operate::Operation;
use super::*;
use crate::journal::pg::Requested;
use std::time::{Duration, Instant};

/// How long the node asked waits for the owner's answer before it gives up (and says so:
/// nothing is performed after that).
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The request as the owner reads it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Forwarded {
    by: String,
    role: String,
    /// `None`: approval groups are not enforced (no users configured).
    groups: Option<BTreeSet<String>>,
    via: String,
    control: Control,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Control {
    Approve {
        run: i64,
        task: Option<String>,
    },
    Reject {
        run: i64,
        task: Option<String>,
        reason: String,
    },
    Pause {
        run: i64,
    },
    Resume {
        run: i64,
    },
    Cancel {
        run: i64,
    },
}

impl Control {
    /// The operations that act on a run in its node's memory.
    fn of(operation: &Operation) -> Option<Control> {
        Some(match operation.clone() {
            Operation::Approve { run, task } => Control::Approve { run, task },
            Operation::Reject { run, task, reason } => Control::Reject { run, task, reason },
            Operation::Pause { run } => Control::Pause { run },
            Operation::Resume { run } => Control::Resume { run },
            Operation::Cancel { run } => Control::Cancel { run },
            Operation::KillSwitch { .. }
            | Operation::RetryRevert { .. }
            | Operation::AcknowledgeRevert { .. }
            | Operation::Feedback { .. } => return None,
        })
    }

    fn run(&self) -> i64 {
        match self {
            Control::Approve { run, .. }
            | Control::Reject { run, .. }
            | Control::Pause { run }
            | Control::Resume { run }
            | Control::Cancel { run } => *run,
        }
    }

    fn operation(self) -> Operation {
        match self {
            Control::Approve { run, task } => Operation::Approve { run, task },
            Control::Reject { run, task, reason } => Operation::Reject { run, task, reason },
            Control::Pause { run } => Operation::Pause { run },
            Control::Resume { run } => Operation::Resume { run },
            Control::Cancel { run } => Operation::Cancel { run },
        }
    }
}

/// The owner's answer: what its engine answered, as data.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Answer {
    Decided {
        tasks: Vec<String>,
    },
    Done,
    NotActive,
    NoRun,
    NoApproval {
        which: String,
    },
    NotInGroup {
        task: String,
        group: String,
        who: String,
    },
    BadRequest {
        message: String,
    },
    Failed {
        message: String,
    },
}

impl Answer {
    fn of(result: Result<Done, EngineError>) -> Answer {
        match result {
            Ok(Done::Decided(tasks)) => Answer::Decided { tasks },
            Ok(Done::Other | Done::Revert(_)) => Answer::Done,
            Err(EngineError::NotActive(_)) => Answer::NotActive,
            Err(EngineError::NoRun(_)) => Answer::NoRun,
            Err(EngineError::NoApproval { which, .. }) => Answer::NoApproval { which },
            Err(EngineError::NotInGroup {
                task, group, who, ..
            }) => Answer::NotInGroup { task, group, who },
            Err(EngineError::BadRequest(message)) => Answer::BadRequest { message },
            Err(other) => Answer::Failed {
                message: other.to_string(),
            },
        }
    }

    fn result(self, run: i64, node: &str) -> Result<Done, EngineError> {
        match self {
            Answer::Decided { tasks } => Ok(Done::Decided(tasks)),
            Answer::Done => Ok(Done::Other),
            Answer::NotActive => Err(EngineError::NotActive(run)),
            Answer::NoRun => Err(EngineError::NoRun(run)),
            Answer::NoApproval { which } => Err(EngineError::NoApproval { run, which }),
            Answer::NotInGroup { task, group, who } => Err(EngineError::NotInGroup {
                run,
                task,
                group,
                who,
            }),
            Answer::BadRequest { message } => Err(EngineError::BadRequest(message)),
            Answer::Failed { message } => Err(EngineError::Elsewhere(format!(
                "node {node}, which runs run {run}, could not do it: {message}"
            ))),
        }
    }
}

fn role(text: &str) -> &'static str {
    match text {
        "viewer" => "viewer",
        "sender" => "sender",
        _ => "operator",
    }
}

impl Engine {
    /// Whether `operation` acts on a run this node does not run, on a cluster: it goes to
    /// the run's node.
    pub(super) fn elsewhere(&self, operation: &Operation) -> bool {
        let Some(control) = Control::of(operation) else {
            return false;
        };
        self.cluster().is_some()
            && !self
                .inner
                .active
                .lock()
                .is_ok_and(|active| active.contains_key(&control.run()))
    }

    /// Asks the node that owns the run to perform `operation`, and waits for its answer.
    pub(super) async fn forward(
        &self,
        actor: &Actor,
        operation: &Operation,
    ) -> Result<Done, EngineError> {
        let Some(control) = Control::of(operation) else {
            return Err(EngineError::BadRequest(
                "only approve, reject, pause, resume and cancel go to another node".into(),
            ));
        };
        let run = control.run();
        let request = serde_json::to_string(&Forwarded {
            by: actor.name.clone(),
            role: actor.role.to_string(),
            groups: match &actor.groups {
                ApprovalGroups::Unenforced => None,
                ApprovalGroups::Member(groups) => Some(groups.clone()),
            },
            via: actor.via.to_string(),
            control,
        })
        .map_err(|error| EngineError::BadRequest(format!("cannot encode the request: {error}")))?;
        let sent = self
            .inner
            .journal
            .call(move |journal| match journal.postgres() {
                Some(pg) => pg.request_control(run, &request),
                None => Ok(Requested::NoRun),
            })
            .await?;
        let (id, owner) = match sent {
            Requested::NoRun => return Err(EngineError::NoRun(run)),
            Requested::Finished => return Err(EngineError::NotActive(run)),
            Requested::Sent { id, owner } => (id, owner.unwrap_or_else(|| "(none)".into())),
        };
        let began = Instant::now();
        let mut pause = Duration::from_millis(10);
        let mut gave_up = false;
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
            let answer = self
                .inner
                .journal
                .call(move |journal| match journal.postgres() {
                    Some(pg) => pg.control_answer(id),
                    None => Ok(None),
                })
                .await?;
            if let Some(answer) = answer {
                let answer: Answer = serde_json::from_str(&answer).map_err(|error| {
                    EngineError::Elsewhere(format!(
                        "node {owner} answered for run {run} with something unreadable: {error}"
                    ))
                })?;
                return answer.result(run, &owner);
            }
            if began.elapsed() >= ANSWER_WITHIN && !gave_up {
                let expired = self
                    .inner
                    .journal
                    .call(move |journal| match journal.postgres() {
                        Some(pg) => pg.expire_control(id),
                        None => Ok(true),
                    })
                    .await?;
                if expired {
                    return Err(EngineError::Elsewhere(format!(
                        "node {owner}, which runs run {run}, did not answer within {} s, and nothing was done: if it died, another node takes the run over within its lease; try again",
                        ANSWER_WITHIN.as_secs()
                    )));
                }
                // Claimed just now: its answer is coming.
                gave_up = true;
            }
            if began.elapsed() >= ANSWER_WITHIN * 3 {
                return Err(EngineError::Elsewhere(format!(
                    "node {owner} took the request for run {run} but has not answered it: look at the run before trying again"
                )));
            }
        }
    }

    /// Performs the requests other nodes wrote for this node's runs, and answers them.
    pub(super) async fn answer_controls(&self) {
        let claimed = self
            .inner
            .journal
            .call(|journal| match journal.postgres() {
                Some(pg) => pg.claim_controls(),
                None => Ok(Vec::new()),
            })
            .await;
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "could not read the requests of other nodes");
                return;
            }
        };
        for request in claimed {
            let answer = match serde_json::from_str::<Forwarded>(&request.request) {
                Ok(forwarded) => {
                    let actor = Actor {
                        name: forwarded.by,
                        role: role(&forwarded.role),
                        groups: forwarded
                            .groups
                            .map_or(ApprovalGroups::Unenforced, ApprovalGroups::Member),
                        via: if forwarded.via == "web" { "web" } else { "api" },
                    };
                    let operation = forwarded.control.operation();
                    tracing::info!(run = request.run_id, by = %actor.name, ?operation, "performing a request from another node");
                    Answer::of(self.perform_here(&actor, &operation).await)
                }
                Err(error) => Answer::BadRequest {
                    message: format!("the request is unreadable: {error}"),
                },
            };
            let text = serde_json::to_string(&answer).unwrap_or_else(|error| {
                format!(r#"{{"kind":"failed","message":"cannot encode the answer: {error}"}}"#)
            });
            let id = request.id;
            let written = self
                .inner
                .journal
                .call(move |journal| match journal.postgres() {
                    Some(pg) => pg.answer_control(id, &text),
                    None => Ok(()),
                })
                .await;
            if let Err(error) = written {
                tracing::error!(%error, request = id, "could not answer the request of another node");
            }
        }
    }
}
