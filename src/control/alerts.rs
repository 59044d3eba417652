//! Alert transitions: recorded on the incident's timeline and card,
//! kept quiet when a silence matches, and dispatched to runbooks (with
//! the cooldown overrides and late pages dispatch asks for); alerts
//! restored as firing after a restart are dispatched once more.

use super::*;

impl Control {
    pub(super) async fn on_alert(&mut self, ev: AlertEvent) {
        let a = &ev.alert;
        let labels: BTreeMap<String, String> = a.labels.to_map();
        let fp = a.labels.fingerprint();
        let state = match ev.kind {
            AlertEventKind::Pending => "pending",
            AlertEventKind::Firing => "firing",
            AlertEventKind::Resolved => "resolved",
        };
        let labels_json = serde_json::to_string(&labels).unwrap_or_default();
        let ann_json = serde_json::to_string(&a.annotations).unwrap_or_default();
        if let Err(e) = self
            .store
            .upsert_alert(
                &format!("{fp:016x}"),
                &a.rule,
                &labels_json,
                &ann_json,
                state,
                a.active_at,
                a.fired_at,
                a.resolved_at,
                a.value,
            )
            .await
        {
            tracing::error!(error = %e, "cannot record alert");
        }
        if self.quiet_if_silenced(&ev).await {
            return;
        }
        let summary = a
            .annotations
            .get("summary")
            .cloned()
            .unwrap_or_else(|| a.labels.to_string());
        match ev.kind {
            AlertEventKind::Pending => {}
            AlertEventKind::Firing => {
                let incident = self.incident_for(&a.labels, &a.rule);
                if !self.incident_labels.contains_key(&incident) {
                    let group: BTreeMap<String, String> = self
                        .incident_group_by
                        .iter()
                        .filter_map(|k| a.labels.get(k).map(|v| (k.clone(), v.to_owned())))
                        .collect();
                    self.incident_labels.insert(incident.clone(), group);
                }
                self.firing.insert(
                    fp,
                    Arc::new(firing_alert(a, &incident, &summary, ev.at, None)),
                );
                // The condition held before the alert fired here (the
                // rule's `for`, or a pusher's delay): dated when it began,
                // so a review measures detection from there.
                if a.active_at < ev.at {
                    self.timeline(
                        &incident,
                        a.active_at,
                        tl::Kind::AlertBegan,
                        By::Bot,
                        About::alert(&a.rule),
                        &crate::incident::began_text(&a.rule, ev.at - a.active_at),
                    )
                    .await;
                }
                self.timeline(
                    &incident,
                    ev.at,
                    tl::Kind::AlertFiring,
                    By::Bot,
                    About::alert(&a.rule),
                    &crate::incident::firing_text(&a.rule, &summary),
                )
                .await;
                let now = self.clock.now();
                let runnable = self.runnable_for(&a.rule);
                let silence = self.silence_matchers(&a.rule, &labels);
                let alert = CardAlert {
                    name: a.rule.clone(),
                    severity: labels.get("severity").cloned(),
                    labels: card_labels(&labels),
                    value: a.value,
                    since: a.fired_at.unwrap_or(ev.at),
                    summary: a.annotations.get("summary").cloned(),
                    firing: true,
                };
                let card = self.card(&incident);
                let new_rule = !card.alerts.iter().any(|x| x.name == a.rule);
                card.firing(alert, now);
                card.silence.get_or_insert(silence);
                for r in runnable {
                    if !card.runnable.contains(&r) {
                        card.runnable.push(r);
                    }
                }
                if new_rule && let Some(charts) = &self.charts {
                    let req = crate::chat::charts::ChartRequest {
                        incident: incident.clone(),
                        channel: self.channel.clone(),
                        group: a.group.clone(),
                        rule: a.rule.clone(),
                        labels: a.labels.clone(),
                        at: ev.at,
                    };
                    if charts.try_send(req).is_err() {
                        tracing::debug!(rule = %a.rule, "chart queue full; no chart for this alert");
                    }
                }
                let ctx = AlertCtx {
                    name: a.rule.clone(),
                    labels,
                    annotations: a.annotations.clone(),
                    value: a.value,
                    fired_at: a.fired_at.unwrap_or(ev.at),
                };
                self.dispatch(&ctx, &incident).await;
            }
            AlertEventKind::Resolved => {
                let incident = match self.firing.remove(&fp) {
                    Some(f) => {
                        let f = Arc::unwrap_or_clone(f);
                        if f.acked.is_some()
                            && let Err(e) = self.store.forget_ack(&f.fingerprint).await
                        {
                            tracing::warn!(error = %e, "cannot forget a resolved alert's ack");
                        }
                        f.incident
                    }
                    None => self.incident_for(&a.labels, &a.rule),
                };
                self.timeline(
                    &incident,
                    ev.at,
                    tl::Kind::AlertResolved,
                    By::Bot,
                    About::alert(&a.rule),
                    &crate::incident::resolved_text(&a.rule, false),
                )
                .await;
                if self.cards.contains_key(&incident) {
                    let now = self.clock.now();
                    let key = card_labels(&labels);
                    self.card(&incident).resolved(&a.rule, &key, now);
                }
                self.say(
                    Some(&incident),
                    Kind::Resolved,
                    format!("*{}* resolved{}", a.rule, identifying(&labels)),
                )
                .await;
            }
        }
    }

    /// A firing alert that a silence matches goes on the timeline as
    /// silenced and no further: no chat, no runbook. Its resolution is
    /// quiet too. Returns whether the event was handled here.
    pub(super) async fn quiet_if_silenced(&mut self, ev: &AlertEvent) -> bool {
        let a = &ev.alert;
        let fp = a.labels.fingerprint();
        let (kind, text, silence) = match ev.kind {
            AlertEventKind::Firing => match self.silences.is_silenced(&a.labels, ev.at) {
                Some(s) => {
                    self.silenced.insert(fp);
                    (
                        tl::Kind::AlertSilenced,
                        format!(
                            "{} firing, silenced by {} ({}, by {})",
                            a.rule,
                            s.id,
                            s.matchers_text(),
                            s.created_by
                        ),
                        Some(s.id.clone()),
                    )
                }
                None => return false,
            },
            AlertEventKind::Resolved if self.silenced.remove(&fp) => {
                self.firing.remove(&fp);
                (
                    tl::Kind::AlertResolved,
                    crate::incident::resolved_text(&a.rule, true),
                    None,
                )
            }
            _ => return false,
        };
        // A silenced alert must not become the incident later alerts
        // without group_by labels join.
        let newest = self.last_incident.clone();
        let incident = self.incident_for(&a.labels, &a.rule);
        self.last_incident = newest;
        if silence.is_some() {
            // Still listed by `alerts`, marked silenced: people asking
            // what fires should see it, and why nobody was paged.
            let summary = a.annotations.get("summary").cloned().unwrap_or_default();
            self.firing.insert(
                fp,
                Arc::new(firing_alert(a, &incident, &summary, ev.at, silence)),
            );
        }
        self.timeline(
            &incident,
            ev.at,
            kind,
            By::Bot,
            About::alert(&a.rule),
            &text,
        )
        .await;
        true
    }

    /// Alerts restored as firing do not fire again, so that a restart never
    /// starts a second mitigation. But the previous process saved the
    /// alert as firing before the control loop had recorded a run for it,
    /// and may have died in between: the alert would then stay firing with
    /// nothing done. So each restored firing alert is dispatched once more,
    /// and a runbook starts only if no run in the store was started by this
    /// firing of this alert (same name, labels and firing time), whatever
    /// the cooldown says. Call before [`Control::run`].
    /// Puts back the acks of alerts still firing (call after
    /// [`Control::dispatch_restored`]); forgets those of alerts that are
    /// not.
    pub async fn restore_acks(&mut self) {
        let acks = match self.store.acks().await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot load acks; alerts restored as unacknowledged");
                return;
            }
        };
        for (fp, by, at) in acks {
            let firing = u64::from_str_radix(&fp, 16)
                .ok()
                .and_then(|k| self.firing.get_mut(&k));
            match firing {
                Some(f) => Arc::make_mut(f).acked = Some(Acked { by, at }),
                None => {
                    if let Err(e) = self.store.forget_ack(&fp).await {
                        tracing::warn!(error = %e, "cannot forget an ack of an alert no longer firing");
                    }
                }
            }
        }
    }

    pub async fn dispatch_restored(&mut self, alerts: Vec<crate::rules::Alert>) {
        if alerts.is_empty() {
            return;
        }
        #[derive(serde::Deserialize)]
        struct Trigger {
            alert: Option<AlertCtx>,
        }
        let started: Vec<(String, AlertCtx)> = match self.store.run_triggers().await {
            Ok(t) => t
                .into_iter()
                .filter_map(|(rb, json)| {
                    let t: Trigger = serde_json::from_str(&json).ok()?;
                    Some((rb, t.alert?))
                })
                .collect(),
            Err(e) => {
                // Starting without knowing could run a mitigation twice.
                tracing::error!(error = %e, "cannot read earlier runs; alerts restored as firing are not dispatched again");
                return;
            }
        };
        let now = self.clock.now();
        for a in alerts {
            let labels: BTreeMap<String, String> = a.labels.to_map();
            let fired_at = a.fired_at.unwrap_or(a.active_at);
            let incident = self.incident_for(&a.labels, &a.rule);
            let silenced_by = self
                .silences
                .is_silenced(&a.labels, now)
                .map(|s| s.id.clone());
            let summary = a.annotations.get("summary").cloned().unwrap_or_default();
            self.firing.insert(
                a.labels.fingerprint(),
                Arc::new(firing_alert(
                    &a,
                    &incident,
                    &summary,
                    fired_at,
                    silenced_by.clone(),
                )),
            );
            if silenced_by.is_some() {
                self.silenced.insert(a.labels.fingerprint());
                continue;
            }
            let ctx = AlertCtx {
                name: a.rule.clone(),
                labels,
                annotations: a.annotations.clone(),
                value: a.value,
                fired_at,
            };
            for d in self.dispatcher.on_firing(&ctx, now) {
                let Decision::Start(plan) = d else { continue };
                let done = started.iter().any(|(rb, t)| {
                    *rb == plan.runbook.name
                        && t.name == ctx.name
                        && t.labels == ctx.labels
                        && t.fired_at == ctx.fired_at
                });
                if done {
                    continue;
                }
                let (rb, key) = (plan.runbook.name.clone(), plan.concurrency_key.clone());
                // Earlier runs for it changed nothing (dispatch rule 5):
                // this is one more try again, if any are left.
                let streak = self.dispatcher.streak(&rb, &key);
                if streak > 0 && self.dispatcher.tries_spent(&rb, &key) {
                    self.say(
                        Some(&incident),
                        Kind::Note,
                        format!(
                            "*{}* was firing when the bot stopped; *{rb}* already failed {streak} times in a row without changing anything, so it is not tried again",
                            ctx.name
                        ),
                    )
                    .await;
                    continue;
                }
                tracing::warn!(alert = %ctx.name, runbook = %rb, "alert was firing at the restart with no run started for it; starting it now");
                let text = if streak > 0 {
                    format!(
                        "*{}* was firing when the bot stopped, and *{rb}* had not changed anything for it yet; trying it again now",
                        ctx.name
                    )
                } else {
                    format!(
                        "*{}* was firing when the bot stopped, before *{rb}* had started for it; starting it now",
                        ctx.name
                    )
                };
                self.say(Some(&incident), Kind::Note, text).await;
                self.spawn_run(plan, Some(&ctx), &incident, By::Bot, streak > 0, now);
            }
        }
    }

    pub(super) async fn dispatch(&mut self, alert: &AlertCtx, incident: &str) {
        let now = self.clock.now();
        let decisions = self.dispatcher.on_firing(alert, now);
        if decisions.iter().any(|d| matches!(d, Decision::Start(_))) {
            // The card first, so it heads the incident's thread: a run
            // says it started as soon as it is spawned.
            self.post_cards().await;
        }
        self.page_if_late(alert, incident, &decisions, now).await;
        for d in decisions {
            let too_slow = matches!(d, Decision::TooSlow { .. });
            match d {
                Decision::Start(plan) => {
                    if let Some(o) = &plan.cooldown_overridden {
                        self.said_cooldown_override(&plan, o, incident, now).await;
                    }
                    self.start_run(plan, alert, incident, now)
                }
                Decision::Skip { runbook, reason } | Decision::TooSlow { runbook, reason } => {
                    tracing::info!(%runbook, %reason, "runbook not started");
                    self.timeline(
                        incident,
                        now,
                        tl::Kind::RunSkipped,
                        By::Bot,
                        About::runbook(&runbook).with_alert(Some(&alert.name)),
                        &format!("runbook {runbook} not started: {reason}"),
                    )
                    .await;
                    // People need to know when automation stood aside for
                    // a reason they control, or chose a faster mitigation;
                    // duplicates are routine.
                    if self.dispatcher.paused().is_some() || too_slow {
                        self.say(
                            Some(incident),
                            Kind::Note,
                            format!("not starting *{runbook}*: {reason}"),
                        )
                        .await;
                    }
                }
            }
        }
    }

    /// Dispatch rule 7: a start that overrode a cooldown is a choice people
    /// should see, with the numbers.
    pub(super) async fn said_cooldown_override(
        &mut self,
        plan: &Plan,
        o: &crate::dispatch::CooldownOverride,
        incident: &str,
        now: Millis,
    ) {
        crate::metrics::get()
            .cooldown_overrides
            .with(&[&plan.runbook.name])
            .inc();
        let text = format!(
            "starting *{}* again for {} within its cooldown: {}. It reads the platform afresh and does what fits now.",
            plan.runbook.name,
            plan.concurrency_key,
            o.text()
        );
        self.timeline(
            incident,
            now,
            tl::Kind::CooldownOverridden,
            By::Bot,
            About::runbook(&plan.runbook.name),
            &text,
        )
        .await;
        self.say(Some(incident), Kind::Note, text).await;
    }

    /// Dispatch rule 6: when no runbook for the alert can take effect
    /// before its predicted breach, people are called at once, with the
    /// numbers; the runbooks start anyway, as nothing faster exists.
    pub(super) async fn page_if_late(
        &mut self,
        alert: &AlertCtx,
        incident: &str,
        decisions: &[Decision],
        now: Millis,
    ) {
        let late: Vec<(&str, &crate::dispatch::Late)> = decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Start(p) => p.late.as_ref().map(|l| (p.runbook.name.as_str(), l)),
                _ => None,
            })
            .collect();
        let Some((_, first)) = late.first() else {
            return;
        };
        for (runbook, _) in &late {
            crate::metrics::get()
                .late_mitigations
                .with(&[runbook])
                .inc();
        }
        let left = crate::human::duration(first.breach_in);
        let which: Vec<String> = late
            .iter()
            .map(|(rb, l)| format!("*{rb}* takes {}", l.takes_text()))
            .collect();
        let text = format!(
            ":rotating_light: needs a person now: *{}* predicts its breach in {left}, and no runbook for it can take effect sooner: {}. Starting {} anyway; decide what else can be done before then.",
            alert.name,
            which.join("; "),
            if late.len() == 1 { "it" } else { "them" }
        );
        self.timeline(
            incident,
            now,
            tl::Kind::PagedLate,
            By::Bot,
            About::alert(&alert.name),
            &text,
        )
        .await;
        self.say(Some(incident), Kind::RunFailed, text).await;
    }
}
