//! Runs: started on the executor (by an alert, by hand, or as a try
//! again), their ends fed back to dispatch, and the tries again that
//! dispatch rule 5 schedules, started only while their alert still fires.

use super::*;

impl Control {
    pub(super) fn start_run(&mut self, plan: Plan, alert: &AlertCtx, incident: &str, now: Millis) {
        self.start_run_as(plan, Some(alert), incident, By::Bot, now);
    }

    /// Starts `plan` and returns its run id.
    pub(super) fn start_run_as(
        &mut self,
        plan: Plan,
        alert: Option<&AlertCtx>,
        incident: &str,
        by: By,
        now: Millis,
    ) -> String {
        self.spawn_run(plan, alert, incident, by, false, now)
    }

    /// Starts `plan`, afresh or as a try again (which keeps the streak of
    /// dispatch rule 5 going), and returns its run id.
    pub(super) fn spawn_run(
        &mut self,
        plan: Plan,
        alert: Option<&AlertCtx>,
        incident: &str,
        by: By,
        retry: bool,
        now: Millis,
    ) -> String {
        self.run_seq += 1;
        let run_id = format!(
            "{}-{}-{:04x}{}",
            plan.runbook.name,
            now / 1000,
            self.boot,
            self.run_seq
        );
        let (rb, key) = (&plan.runbook.name, &plan.concurrency_key);
        if retry {
            self.dispatcher.retried(rb, key, &run_id, now);
        } else {
            self.dispatcher.started(rb, key, &run_id, now);
        }
        let card_run = CardRun {
            id: run_id.clone(),
            runbook: plan.runbook.name.clone(),
            state: RunState::RUNNING,
            last_step: None,
            waiting: None,
        };
        self.card(incident).run_progress(card_run, now);
        self.executor.start(RunRequest {
            run_id: run_id.clone(),
            runbook: plan.runbook,
            incident: incident.to_owned(),
            concurrency_key: plan.concurrency_key,
            alert: alert.cloned(),
            inputs: plan.inputs,
            by,
        });
        run_id
    }

    pub(super) async fn on_finished(&mut self, f: RunFinished) {
        crate::metrics::get()
            .runs
            .with(&[&f.runbook, f.outcome.as_str()])
            .inc();
        let now = self.clock.now();
        if let Some(ms) = f.took_effect_after {
            self.dispatcher.took_effect(&f.runbook, ms);
        }
        let after =
            self.dispatcher
                .finished(&f.runbook, &f.concurrency_key, f.changed_nothing(), now);
        // A person who started a run by hand sees it fail and decides.
        if let Some(alert) = &f.alert {
            self.after_run(&f, alert, after, now).await;
        }
        let card = self.card(&f.incident);
        let last_step = card
            .run
            .as_ref()
            .filter(|r| r.id == f.run_id)
            .and_then(|r| r.last_step.clone());
        card.run_progress(
            CardRun {
                id: f.run_id.clone(),
                runbook: f.runbook.clone(),
                state: RunState::Ended(f.outcome),
                last_step,
                waiting: None,
            },
            now,
        );
        if f.outcome != Outcome::Succeeded {
            tracing::warn!(run = %f.run_id, outcome = f.outcome.as_str(), "run did not succeed");
        }
    }

    /// Says and schedules what dispatch decided after a run (rule 5).
    pub(super) async fn after_run(
        &mut self,
        f: &RunFinished,
        alert: &AlertCtx,
        after: AfterRun,
        now: Millis,
    ) {
        let counted = |outcome: &str| {
            crate::metrics::get()
                .run_retries
                .with(&[&f.runbook, outcome])
                .inc();
        };
        match after {
            AfterRun::Nothing => {}
            AfterRun::Retry { at, attempt, of } => {
                counted("scheduled");
                let wait = crate::human::duration(at - now);
                let text = format!(
                    "*{}* failed before changing anything, so it counts for neither cooldown nor budget; trying it again in {wait} if *{}* still fires (try {attempt} of {of})",
                    f.runbook, alert.name
                );
                self.timeline(
                    &f.incident,
                    now,
                    tl::Kind::RetryScheduled,
                    By::Bot,
                    About::run(&f.runbook, &f.run_id).with_alert(Some(&alert.name)),
                    &text,
                )
                .await;
                self.say(Some(&f.incident), Kind::Note, text).await;
                self.retries
                    .retain(|r| !(r.runbook == f.runbook && r.alert.labels == alert.labels));
                self.retries.push(PendingRetry {
                    due: at,
                    runbook: f.runbook.clone(),
                    alert: alert.clone(),
                    incident: f.incident.clone(),
                    attempt,
                    of,
                });
            }
            AfterRun::GaveUp { attempts } => {
                counted("spent");
                let text = format!(
                    ":rotating_light: needs a person: *{}* failed {} times in a row without changing anything while *{}* fires; not trying it again",
                    f.runbook,
                    attempts + 1,
                    alert.name
                );
                self.timeline(
                    &f.incident,
                    now,
                    tl::Kind::RetriesSpent,
                    By::Bot,
                    About::run(&f.runbook, &f.run_id).with_alert(Some(&alert.name)),
                    &text,
                )
                .await;
                self.say(Some(&f.incident), Kind::RunFailed, text).await;
            }
        }
    }

    /// Starts the tries again that are due, for alerts that still fire.
    pub(super) async fn on_retries_due(&mut self) {
        let now = self.clock.now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|r| r.due <= now);
        self.retries = later;
        for r in due {
            let labels: crate::labels::Labels = r.alert.labels.clone().into();
            let fp = labels.fingerprint();
            let still = self.firing.contains_key(&fp)
                && !self.silenced.contains(&fp)
                && self.silences.is_silenced(&labels, now).is_none();
            let decision = if still {
                self.dispatcher.retry(&r.runbook, &r.alert, now)
            } else {
                Some(Decision::Skip {
                    runbook: r.runbook.clone(),
                    reason: format!("*{}* no longer fires or is silenced", r.alert.name),
                })
            };
            match decision {
                Some(Decision::Start(plan)) => {
                    crate::metrics::get()
                        .run_retries
                        .with(&[&r.runbook, "started"])
                        .inc();
                    let text = format!(
                        "trying *{}* again (try {} of {}): *{}* still fires",
                        r.runbook, r.attempt, r.of, r.alert.name
                    );
                    self.timeline(
                        &r.incident,
                        now,
                        tl::Kind::RetryStarted,
                        By::Bot,
                        About::runbook(&r.runbook).with_alert(Some(&r.alert.name)),
                        &text,
                    )
                    .await;
                    self.say(Some(&r.incident), Kind::Note, text).await;
                    self.post_cards().await;
                    self.spawn_run(plan, Some(&r.alert), &r.incident, By::Bot, true, now);
                }
                Some(
                    Decision::Skip { runbook, reason } | Decision::TooSlow { runbook, reason },
                ) => {
                    crate::metrics::get()
                        .run_retries
                        .with(&[&runbook, "dropped"])
                        .inc();
                    let text = format!("not trying *{runbook}* again: {reason}");
                    self.timeline(
                        &r.incident,
                        now,
                        tl::Kind::RetryDropped,
                        By::Bot,
                        About::runbook(&runbook).with_alert(Some(&r.alert.name)),
                        &text,
                    )
                    .await;
                    self.say(Some(&r.incident), Kind::Note, text).await;
                }
                // Its runbook was unloaded by a reload meanwhile.
                None => {}
            }
        }
    }
}
