//! Matching and admission: an accepted alert is matched against the plan, and each matched
//! rule is admitted (episode, cooldown, concurrency, kill switch, arguments) or suppressed
//! with the reason journaled.

use super::*;

/// Alerts matched together: their admissions, suppressions and `processed` marks are one
/// journal write (one commit), in arrival order.
pub(super) const MATCH_BATCH: usize = 64;

/// What matching decided for one matched rule, before the journal is asked.
enum Intent {
    Suppress {
        rule: String,
        reason: &'static str,
        detail: String,
    },
    Admit(Box<Candidate>),
}

/// A run the journal may start: what the admission needs, and what the run needs after.
struct Candidate {
    admission: Admission,
    playbook: plan::Playbook,
    arguments: BTreeMap<String, Value>,
    /// The cooldown's key, for the suppression's detail.
    cooldown_key: String,
}

/// An intent as the journal's write takes it: an admission, or a suppression's rule,
/// reason and detail.
type Asked = Result<Admission, (String, &'static str, String)>;

/// Alerts' decisions queued in the journal, and what starting their runs needs.
pub(super) struct Deciding {
    candidates: Vec<Vec<Option<Box<Candidate>>>>,
    rules: Vec<Vec<String>>,
    decided: Result<Submitted<Vec<Vec<Decided>>>, JournalError>,
}

/// What the journal made of an intent.
enum Decided {
    Started(i64),
    Suppressed {
        reason: &'static str,
        detail: String,
    },
}

impl Engine {
    /// Matches one alert and starts what its rules ask for, without marking it processed.
    /// Also says whether every journal write it needed succeeded.
    pub(super) async fn dispatch(&self, alert_id: i64, alert: &Alert) -> (Vec<Dispatch>, bool) {
        let span = tracing::info_span!("alert", alert_id, alertname = %alert.name, status = alert.status.as_str());
        async {
            let mut journaled = true;
            if alert.status == Status::Resolved {
                journaled &= self.resolved(&alert.fingerprint, alert.starts_at).await;
            }
            let intents = self.intents(&self.planned(), alert_id, alert);
            let (mut dispatches, written) = self
                .decide_in_journal(vec![(alert_id, intents)], false)
                .await;
            (dispatches.pop().unwrap_or_default(), journaled && written)
        }
        .instrument(span)
        .await
    }

    /// Matches alerts in arrival order and starts what their rules ask for. Consecutive
    /// firing alerts are decided and marked processed in one journal write; a resolved
    /// alert first ends what its episode started, as [`Engine::dispatch`] does.
    pub(super) async fn process_batch(&self, alerts: Vec<(i64, Alert)>) {
        let plan = self.planned();
        let mut segment: Vec<(i64, Vec<Intent>)> = Vec::new();
        for (alert_id, alert) in alerts {
            if alert.status == Status::Resolved {
                self.decide_in_journal(std::mem::take(&mut segment), true)
                    .await;
                let (_, journaled) = self.dispatch(alert_id, &alert).await;
                if journaled {
                    self.mark_processed(vec![alert_id]).await;
                } else {
                    tracing::error!(
                        alert_id,
                        "the journal failed while this alert was processed; it will be processed again at the next start"
                    );
                }
                continue;
            }
            let intents = self.intents(&plan, alert_id, &alert);
            segment.push((alert_id, intents));
        }
        self.decide_in_journal(segment, true).await;
    }

    /// What the plan's rules ask for `alert`: one intent per matched rule.
    fn intents(&self, planned: &Planned, alert_id: i64, alert: &Alert) -> Vec<Intent> {
        let value = alert.to_value();
        let outcome = planned.plan.match_alert(&value);
        self.intents_of(planned, alert_id, alert, &value, outcome)
    }

    /// The intents of an alert whose record is `value` and whose match is `outcome`.
    fn intents_of(
        &self,
        planned: &Planned,
        alert_id: i64,
        alert: &Alert,
        value: &Value,
        outcome: plan::MatchOutcome,
    ) -> Vec<Intent> {
        let plan = &planned.plan;
        let mut intents = Vec::new();
        for (rule_index, error) in &outcome.errors {
            if let Some(rule) = plan.rules.get(*rule_index as usize) {
                let detail = format!("`when` could not be evaluated: {error}");
                tracing::warn!(rule = %rule.name, %detail, "rule skipped");
                intents.push(Intent::Suppress {
                    rule: rule.name.clone(),
                    reason: "unevaluable",
                    detail,
                });
            }
        }
        for rule_index in outcome.matched {
            if let Some(rule) = plan.rules.get(rule_index as usize) {
                intents.push(self.intent(planned, rule, alert_id, alert, value));
            }
        }
        intents
    }

    /// Decides `alerts`' intents in the journal, in one write: each admission (episode,
    /// cooldown, concurrency, decided there, exactly once), each suppression, and, when
    /// `mark_processed`, each alert marked processed. Then starts the admitted runs. A
    /// failed write leaves every alert of it unprocessed (the next start matches them
    /// again; admission is idempotent per episode), and says so.
    async fn decide_in_journal(
        &self,
        alerts: Vec<(i64, Vec<Intent>)>,
        mark_processed: bool,
    ) -> (Vec<Vec<Dispatch>>, bool) {
        if alerts.is_empty() {
            return (Vec::new(), true);
        }
        let deciding = self.submit_decisions(alerts, mark_processed);
        self.complete_decisions(deciding).await
    }

    /// Matches firing alerts and queues their decisions in the journal (as
    /// [`Engine::process_batch`] does), without waiting: what is returned starts their runs
    /// once the journal has decided. The worker matches the next alerts meanwhile; the
    /// journal decides them after these, in order, so they see these admissions.
    /// An alert the webhook matched against the current plan is not matched again.
    pub(super) fn submit_firing(&self, alerts: Vec<(i64, Alert, Option<Matched>)>) -> Deciding {
        let planned = self.planned();
        let intents = alerts
            .into_iter()
            .map(|(alert_id, alert, matched)| {
                let intents = match matched {
                    Some(matched) if Arc::ptr_eq(&matched.planned, &planned) => {
                        self.intents_of(&planned, alert_id, &alert, &matched.value, matched.outcome)
                    }
                    _ => self.intents(&planned, alert_id, &alert),
                };
                (alert_id, intents)
            })
            .collect();
        self.submit_decisions(intents, true)
    }

    /// The first half of [`Engine::decide_in_journal`]: the journal write, queued.
    fn submit_decisions(&self, alerts: Vec<(i64, Vec<Intent>)>, mark_processed: bool) -> Deciding {
        let at = self.inner.clock.now_ms();
        let mut candidates: Vec<Vec<Option<Box<Candidate>>>> = Vec::new();
        let mut work: Vec<(i64, Vec<Asked>)> = Vec::new();
        let mut rules: Vec<Vec<String>> = Vec::new();
        for (alert_id, intents) in alerts {
            let mut kept = Vec::new();
            let mut asked = Vec::new();
            let mut names = Vec::new();
            for intent in intents {
                match intent {
                    Intent::Suppress {
                        rule,
                        reason,
                        detail,
                    } => {
                        names.push(rule.clone());
                        asked.push(Err((rule, reason, detail)));
                        kept.push(None);
                    }
                    Intent::Admit(candidate) => {
                        names.push(candidate.admission.rule.clone());
                        asked.push(Ok(candidate.admission.clone()));
                        kept.push(Some(candidate));
                    }
                }
            }
            work.push((alert_id, asked));
            candidates.push(kept);
            rules.push(names);
        }
        let cooldown_keys: Vec<Vec<String>> = candidates
            .iter()
            .map(|kept| {
                kept.iter()
                    .map(|candidate| {
                        candidate
                            .as_ref()
                            .map(|candidate| candidate.cooldown_key.clone())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        let decided = self
            .inner
            .journal
            .submit(move |journal| {
                let mut decided = Vec::with_capacity(work.len());
                for ((alert_id, asked), keys) in work.iter().zip(&cooldown_keys) {
                    let mut per_alert = Vec::with_capacity(asked.len());
                    for (intent, key) in asked.iter().zip(keys) {
                        let (rule, reason, detail) = match intent {
                            Err((rule, reason, detail)) => (rule.as_str(), *reason, detail.clone()),
                            Ok(admission) => match journal.admit(admission)? {
                                Admitted::Started(run) => {
                                    per_alert.push(Decided::Started(run));
                                    continue;
                                }
                                Admitted::Duplicate { existing_run } => (
                                    admission.rule.as_str(),
                                    "duplicate",
                                    format!("run {existing_run} already handles this firing episode"),
                                ),
                                Admitted::Cooldown { last_run, until } => (
                                    admission.rule.as_str(),
                                    "cooldown",
                                    format!(
                                        "cooldown for {key:?}: run {last_run} started recently; cools down until {}",
                                        medic_compiler::units::format_time(until)
                                    ),
                                ),
                                Admitted::Concurrency { running } => (
                                    admission.rule.as_str(),
                                    "concurrency",
                                    format!(
                                        "{running} runs of this rule already hold its concurrency key"
                                    ),
                                ),
                            },
                        };
                        journal.suppress(*alert_id, rule, reason, &detail, at)?;
                        per_alert.push(Decided::Suppressed { reason, detail });
                    }
                    if mark_processed {
                        journal.processed(*alert_id)?;
                    }
                    decided.push(per_alert);
                }
                Ok(decided)
            });
        Deciding {
            candidates,
            rules,
            decided,
        }
    }

    /// The second half of [`Engine::decide_in_journal`]: hears the journal's decisions and
    /// starts the admitted runs.
    pub(super) async fn complete_decisions(
        &self,
        deciding: Deciding,
    ) -> (Vec<Vec<Dispatch>>, bool) {
        let Deciding {
            candidates,
            rules,
            decided,
        } = deciding;
        let decided = match decided {
            Ok(submitted) => submitted.await,
            Err(error) => Err(error),
        };
        let decided = match decided {
            Ok(decided) => decided,
            Err(error) => {
                let detail = format!("the journal refused the run: {error}");
                tracing::error!(%detail, "the alerts will be matched again at the next start");
                let dispatches = rules
                    .into_iter()
                    .map(|names| {
                        names
                            .into_iter()
                            .map(|rule| {
                                self.inner.metrics.suppressed("journal");
                                Dispatch::Suppressed {
                                    rule,
                                    reason: "journal".into(),
                                    detail: detail.clone(),
                                }
                            })
                            .collect()
                    })
                    .collect();
                return (dispatches, false);
            }
        };
        let mut dispatches = Vec::with_capacity(decided.len());
        for ((per_alert, kept), names) in decided.into_iter().zip(candidates).zip(rules) {
            let mut alert_dispatches = Vec::with_capacity(per_alert.len());
            for ((decision, candidate), rule) in per_alert.into_iter().zip(kept).zip(names) {
                match (decision, candidate) {
                    (Decided::Started(run), Some(candidate)) => {
                        let Candidate {
                            admission,
                            playbook,
                            arguments,
                            ..
                        } = *candidate;
                        tracing::info!(run, rule = %rule, playbook = %playbook.name, "run started");
                        self.spawn_run(Resumable {
                            run,
                            rule: rule.clone(),
                            playbook,
                            arguments,
                            prior: BTreeMap::new(),
                            control: Control::default(),
                            started_at: admission.at,
                            fingerprint: admission.fingerprint,
                            episode_starts_at: Some(admission.starts_at),
                            performs_actions: admission.performs_actions,
                        });
                        alert_dispatches.push(Dispatch::Started { rule, run });
                    }
                    (Decided::Suppressed { reason, detail }, _) => {
                        self.inner.metrics.suppressed(reason);
                        tracing::info!(rule = %rule, reason, %detail, "suppressed");
                        alert_dispatches.push(Dispatch::Suppressed {
                            rule,
                            reason: reason.into(),
                            detail,
                        });
                    }
                    (Decided::Started(run), None) => {
                        // Not reachable: only an admission starts a run.
                        tracing::error!(run, rule = %rule, "a run started without its playbook");
                    }
                }
            }
            dispatches.push(alert_dispatches);
        }
        (dispatches, true)
    }

    /// What one matched rule asks for: a run to admit, or why not (no playbook, arguments
    /// that do not evaluate, the kill switch).
    fn intent(
        &self,
        planned: &Planned,
        rule: &plan::Rule,
        alert_id: i64,
        alert: &Alert,
        value: &Value,
    ) -> Intent {
        let suppress = |reason: &'static str, detail: String| Intent::Suppress {
            rule: rule.name.clone(),
            reason,
            detail,
        };
        let (Some(playbook), Some(definition)) = (
            planned.plan.playbook(&rule.playbook),
            planned.definitions.get(&rule.playbook),
        ) else {
            return suppress(
                "no_playbook",
                format!("the plan has no playbook `{}`", rule.playbook),
            );
        };
        let scope = AlertScope(value);
        let arguments = match arguments(rule, playbook, &scope) {
            Ok(arguments) => arguments,
            Err(detail) => return suppress("bad_arguments", detail),
        };
        if rule.performs_actions && !self.inner.config.dry_run && self.kill_switch() {
            return suppress(
                "kill_switch",
                format!(
                    "`{}` performs actions and the kill switch is on",
                    rule.playbook
                ),
            );
        }
        let key = |limit: &plan::Limit| match &limit.key {
            None => Ok(String::new()),
            Some(key) => key.eval(&scope).map(|value| match value {
                Value::String(text) => text,
                other => plan::render::value_text(&other),
            }),
        };
        // A limit's key (`per alert.service`), evaluated for this alert; no key is one
        // global key.
        let keyed = |limit: Option<&plan::Limit>, what: &str| match limit {
            None => Ok(None),
            Some(limit) => key(limit)
                .map(|key| Some((key, limit.value)))
                .map_err(|error| format!("the {what} key could not be evaluated: {error}")),
        };
        let (cooldown, concurrency) = match (
            keyed(rule.cooldown.as_ref(), "cooldown"),
            keyed(rule.concurrency.as_ref(), "concurrency"),
        ) {
            (Ok(cooldown), Ok(concurrency)) => (cooldown, concurrency),
            (Err(detail), _) | (_, Err(detail)) => return suppress("bad_arguments", detail),
        };
        Intent::Admit(Box::new(Candidate {
            cooldown_key: cooldown
                .as_ref()
                .map(|(key, _)| key.clone())
                .unwrap_or_default(),
            admission: Admission {
                rule: rule.name.clone(),
                playbook: playbook.name.clone(),
                alert_id,
                fingerprint: alert.fingerprint.clone(),
                starts_at: alert.starts_at,
                cooldown,
                concurrency,
                performs_actions: rule.performs_actions,
                arguments: serde_json::to_string(&arguments).unwrap_or_default(),
                definition: definition.clone(),
                at: self.inner.clock.now_ms(),
            },
            playbook: playbook.clone(),
            arguments,
        }))
    }
}

/// The `alert` variable of rule expressions.
struct AlertScope<'a>(&'a Value);

impl plan::Vars for AlertScope<'_> {
    fn var(&self, name: &str) -> Option<&Value> {
        (name == "alert").then_some(self.0)
    }
}

/// Evaluates a rule's arguments to its playbook; parameters it leaves out take their
/// (constant) defaults.
fn arguments(
    rule: &plan::Rule,
    playbook: &plan::Playbook,
    scope: &AlertScope<'_>,
) -> Result<BTreeMap<String, Value>, String> {
    let mut arguments = BTreeMap::new();
    for param in &playbook.params {
        let Some(value) = rule.argument(param, scope) else {
            return Err(format!("no value for the parameter `{}`", param.name));
        };
        let value = value.map_err(|error| {
            format!(
                "the argument `{}` could not be evaluated: {error}",
                param.name
            )
        })?;
        arguments.insert(param.name.clone(), value);
    }
    Ok(arguments)
}
