//! Matching and admission: an accepted alert is matched against the plan, and each matched
//! rule is admitted (episode, cooldown, concurrency, kill switch, arguments) or suppressed
//! with the reason journaled.

use super::*;

impl Engine {
    /// Matches one alert and starts what its rules ask for, without marking it processed.
    /// Also says whether every journal write it needed succeeded.
    pub(super) async fn dispatch(&self, alert_id: i64, alert: &Alert) -> (Vec<Dispatch>, bool) {
        let span = tracing::info_span!("alert", alert_id, alertname = %alert.name, status = alert.status.as_str());
        self.dispatch_inner(alert_id, alert).instrument(span).await
    }

    pub(super) async fn dispatch_inner(
        &self,
        alert_id: i64,
        alert: &Alert,
    ) -> (Vec<Dispatch>, bool) {
        let plan = self.plan();
        let mut journaled = true;
        if alert.status == Status::Resolved {
            journaled &= self.resolved(&alert.fingerprint, alert.starts_at).await;
        }
        let value = alert.to_value();
        let outcome = plan.match_alert(&value);
        let mut dispatches = Vec::new();
        for (rule_index, error) in &outcome.errors {
            if let Some(rule) = plan.rules.get(*rule_index as usize) {
                let detail = format!("`when` could not be evaluated: {error}");
                tracing::warn!(rule = %rule.name, %detail, "rule skipped");
                dispatches.push(
                    self.suppress(alert_id, &rule.name, "unevaluable", detail)
                        .await,
                );
            }
        }
        for rule_index in outcome.matched {
            let Some(rule) = plan.rules.get(rule_index as usize) else {
                continue;
            };
            dispatches.push(self.admit(&plan, rule, alert_id, alert, &value).await);
        }
        journaled &= !dispatches.iter().any(|dispatch| {
            matches!(dispatch, Dispatch::Suppressed { reason, .. } if reason == "journal")
        });
        (dispatches, journaled)
    }

    pub(super) async fn suppress(
        &self,
        alert_id: i64,
        rule: &str,
        reason: &str,
        detail: String,
    ) -> Dispatch {
        self.inner.metrics.suppressed(reason);
        tracing::info!(rule, reason, %detail, "suppressed");
        let (rule_owned, reason_owned, detail_owned) =
            (rule.to_string(), reason.to_string(), detail.clone());
        let at = self.inner.clock.now_ms();
        if let Err(error) = self
            .inner
            .journal
            .call(move |journal| {
                journal.suppress(alert_id, &rule_owned, &reason_owned, &detail_owned, at)
            })
            .await
        {
            tracing::error!(%error, "could not journal a suppression");
        }
        Dispatch::Suppressed {
            rule: rule.into(),
            reason: reason.into(),
            detail,
        }
    }

    pub(super) async fn admit(
        &self,
        plan: &Plan,
        rule: &plan::Rule,
        alert_id: i64,
        alert: &Alert,
        value: &Value,
    ) -> Dispatch {
        let Some(playbook) = plan.playbook(&rule.playbook) else {
            let detail = format!("the plan has no playbook `{}`", rule.playbook);
            return self
                .suppress(alert_id, &rule.name, "no_playbook", detail)
                .await;
        };
        let scope = AlertScope(value);
        let arguments = match arguments(rule, playbook, &scope) {
            Ok(arguments) => arguments,
            Err(detail) => {
                return self
                    .suppress(alert_id, &rule.name, "bad_arguments", detail)
                    .await;
            }
        };
        if rule.performs_actions && !self.inner.config.dry_run && self.kill_switch() {
            let detail = format!(
                "`{}` performs actions and the kill switch is on",
                rule.playbook
            );
            return self
                .suppress(alert_id, &rule.name, "kill_switch", detail)
                .await;
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
            (Err(detail), _) | (_, Err(detail)) => {
                return self
                    .suppress(alert_id, &rule.name, "bad_arguments", detail)
                    .await;
            }
        };
        let admission = Admission {
            rule: rule.name.clone(),
            playbook: playbook.name.clone(),
            alert_id,
            fingerprint: alert.fingerprint.clone(),
            starts_at: alert.starts_at,
            cooldown: cooldown.clone(),
            concurrency,
            performs_actions: rule.performs_actions,
            arguments: serde_json::to_string(&arguments).unwrap_or_default(),
            definition: serde_json::to_string(playbook).unwrap_or_default(),
            at: self.inner.clock.now_ms(),
        };
        let admitted = match self
            .inner
            .journal
            .call(move |journal| journal.admit(&admission))
            .await
        {
            Ok(admitted) => admitted,
            Err(error) => {
                let detail = format!("the journal refused the run: {error}");
                tracing::error!(%detail);
                return self.suppress(alert_id, &rule.name, "journal", detail).await;
            }
        };
        match admitted {
            Admitted::Started(run) => {
                tracing::info!(run, rule = %rule.name, playbook = %playbook.name, "run started");
                self.spawn_run(Resumable {
                    run,
                    rule: rule.name.clone(),
                    playbook: playbook.clone(),
                    arguments,
                    prior: BTreeMap::new(),
                    control: Control::default(),
                    started_at: self.inner.clock.now_ms(),
                    fingerprint: alert.fingerprint.clone(),
                    episode_starts_at: Some(alert.starts_at),
                    performs_actions: rule.performs_actions,
                });
                Dispatch::Started {
                    rule: rule.name.clone(),
                    run,
                }
            }
            Admitted::Duplicate { existing_run } => {
                let detail = format!("run {existing_run} already handles this firing episode");
                self.suppress(alert_id, &rule.name, "duplicate", detail)
                    .await
            }
            Admitted::Cooldown { last_run, until } => {
                let key = cooldown.map(|(key, _)| key).unwrap_or_default();
                let detail = format!(
                    "cooldown for {key:?}: run {last_run} started recently; cools down until {}",
                    medic_compiler::units::format_time(until)
                );
                self.suppress(alert_id, &rule.name, "cooldown", detail)
                    .await
            }
            Admitted::Concurrency { running } => {
                let detail =
                    format!("{running} runs of this rule already hold its concurrency key");
                self.suppress(alert_id, &rule.name, "concurrency", detail)
                    .await
            }
        }
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
    let empty: BTreeMap<String, Value> = BTreeMap::new();
    let mut arguments = BTreeMap::new();
    for param in &playbook.params {
        let value = match (rule.args.get(&param.name), &param.default) {
            (Some(expression), _) => expression.eval(scope),
            (None, Some(default)) => default.eval(&empty),
            (None, None) => {
                return Err(format!("no value for the parameter `{}`", param.name));
            }
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
