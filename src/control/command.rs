//! What people ask of the control loop: the commands, the typed
//! reasons one is refused, the views `status` answers with, and how each
//! command is carried out. A `silence` step asks through the same queue
//! (the [`Silencer`] below).

use super::*;

/// The control loop owns silences; a `silence` step asks it through its
/// queue, as a person's command would.
impl Silencer for mpsc::Sender<Command> {
    fn silence(&self, ask: Ask) -> BoxFut<'_, Result<Granted, SilenceError>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let cmd = Command::Silence {
                matchers: ask.matchers,
                duration_ms: ask.duration_ms,
                by: SilenceBy::Step(ask.by),
                comment: ask.comment,
                key: Some(ask.key),
                reply,
            };
            self.send(cmd).await.map_err(|_| SilenceError::Stopped)?;
            let (id, ends_at) = answer
                .await
                .map_err(|_| SilenceError::Stopped)?
                .map_err(|e| SilenceError::Refused(e.to_string()))?;
            Ok(Granted { id, ends_at })
        })
    }
}

/// Who asks for a silence. A person's is on the incident timeline as
/// theirs; a runbook's `silence` step is there already, as the step.
#[derive(Clone, Debug, PartialEq)]
pub enum SilenceBy {
    Person(Who),
    /// How the step names itself (`runbook run ID`).
    Step(String),
}

impl SilenceBy {
    /// What the silence records as its maker.
    pub fn label(&self) -> String {
        match self {
            SilenceBy::Person(w) => w.label(),
            SilenceBy::Step(s) => s.clone(),
        }
    }
}

/// A command from a person, already parsed and authorised. `by` is who
/// asked: their user id decides, and records show the name beside it
/// ([`crate::roles::Who::label`]).
#[derive(Debug)]
pub enum Command {
    Status(oneshot::Sender<Status>),
    /// Answers once automation is paused, so "paused" is only said of a
    /// pause in force.
    Pause {
        by: Who,
        reason: String,
        reply: oneshot::Sender<()>,
    },
    Resume {
        by: Who,
        reply: oneshot::Sender<()>,
    },
    /// Approve or deny the gate a run waits at. The reply is what was
    /// decided, or why the person may not.
    Answer {
        run: String,
        verdict: Verdict,
        by: Who,
        role: Role,
        reply: oneshot::Sender<Result<String, AnswerError>>,
    },
    /// Stop a run now.
    Abort {
        run: String,
        by: Who,
        reply: oneshot::Sender<Result<(), AbortError>>,
    },
    /// Silences matching alerts from now for `duration_ms`; replies with
    /// the silence's id and end, or why it was refused. With a `key` (a
    /// runbook step's idempotency key) asking twice makes one silence: a
    /// step repeated after a restart gets the first one back.
    Silence {
        matchers: Vec<Matcher>,
        duration_ms: Millis,
        by: SilenceBy,
        comment: String,
        key: Option<String>,
        reply: oneshot::Sender<Result<(String, Millis), SilenceRefused>>,
    },
    /// Expires a silence now.
    Unsilence {
        id: String,
        by: Who,
        reply: oneshot::Sender<Result<(), UnsilenceError>>,
    },
    /// Acknowledges firing alerts: `target` is an alert's fingerprint (or
    /// a unique prefix of it), an alert name, or an incident. Replies with
    /// what was acknowledged.
    Ack {
        target: String,
        by: Who,
        reply: oneshot::Sender<Result<String, AckError>>,
    },
    /// Starts a runbook by hand with the inputs given (values as typed,
    /// checked against the runbook's inputs). Replies with the run id.
    Run {
        runbook: String,
        inputs: BTreeMap<String, Json>,
        by: Who,
        reply: oneshot::Sender<Result<String, StartRefused>>,
    },
    /// For the checklist runner ([`crate::preflight::task`]): start a run,
    /// or sign one off. Passed on without waiting; the runner replies.
    Checklist(crate::preflight::task::Request),
    /// Reloaded runbooks ([`crate::reload`]): alerts from now on match
    /// these. Runs in flight finish on the version they started with;
    /// concurrency, cooldowns and budgets carry over by runbook name.
    /// Answers once they are in place.
    Reload {
        runbooks: Vec<std::sync::Arc<crate::runbook::Runbook>>,
        reply: oneshot::Sender<()>,
    },
    /// A command the edge refused (the person's role was too low, or they
    /// have none at all), to be recorded where the rest of the incident's
    /// story is.
    Refused {
        by: Who,
        command: String,
        reason: String,
    },
}

/// Why a silence was not made.
#[derive(Debug, thiserror::Error)]
pub enum SilenceRefused {
    #[error(transparent)]
    Invalid(#[from] crate::silence::SilenceError),
    /// A silence that would vanish on restart is refused.
    #[error("cannot save the silence: {0}")]
    NotSaved(#[source] crate::store::StoreError),
}

/// Why a silence was not expired, or not for good.
#[derive(Debug, thiserror::Error)]
pub enum UnsilenceError {
    #[error(transparent)]
    Unknown(#[from] crate::silence::SilenceError),
    /// In force until restart only; said rather than pretended.
    #[error("expired until restart, but cannot save that: {0}")]
    NotSaved(#[source] crate::store::StoreError),
}

/// Why nothing was acknowledged.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AckError {
    #[error("no alert is firing, so there is nothing to acknowledge as {target:?}")]
    NothingFiring { target: String },
    #[error(
        "nothing firing is called {target:?}{}; firing: {firing}",
        hint.as_ref().map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_default()
    )]
    NoMatch {
        target: String,
        hint: Option<String>,
        /// The names and incidents that do fire, counted past a few.
        firing: String,
    },
}

/// An alert now firing, as `status` and `alerts` show it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FiringAlert {
    /// The label set's fingerprint, 16 hex digits, as the store keys it.
    pub fingerprint: String,
    pub name: String,
    /// Where it came from: its rule group for firebreak's own rules, or
    /// `alertmanager` / `api` for pushed alerts.
    pub group: String,
    pub incident: String,
    pub labels: BTreeMap<String, String>,
    pub summary: String,
    /// The alert expression's value when it fired.
    pub value: f64,
    pub since: Millis,
    pub acked: Option<Acked>,
    /// The silence that keeps it quiet, if one does.
    pub silenced_by: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Acked {
    pub by: String,
    pub at: Millis,
}

/// An active silence, as `status` shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SilenceView {
    pub id: String,
    pub matchers: String,
    pub ends_at: Millis,
    pub by: String,
    pub comment: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    pub paused: Option<Pause>,
    /// (runbook, concurrency key, run id), by run id.
    pub running: Vec<(String, String, String)>,
    /// Oldest first; silenced ones included, marked.
    pub firing: Vec<Arc<FiringAlert>>,
    /// Runs waiting for a person's approval.
    pub waiting: Vec<Waiting>,
    /// Alerts waiting out their rule's `for`, oldest first.
    pub pending: Arc<Vec<crate::rules::PendingAlert>>,
    /// What the bot cannot see now (see [`crate::sight`]).
    pub blind: Vec<crate::chat::card::Blind>,
    pub silences: Vec<SilenceView>,
    /// The incident that alerts without `group_by` labels join, and that
    /// manual runs and refusals are recorded under.
    pub incident: Option<String>,
}

/// Distinct alerts an ack names before counting the rest.
const ACK_LISTED: usize = 10;

impl Control {
    /// A pause or resume: on the timeline as the person's and said in the
    /// channel. Runbooks that do not start during an incident are part of
    /// its story; a switch between incidents is on record too.
    async fn automation_switched(&self, kind: tl::Kind, who: &Who, now: Millis, text: String) {
        let incident = self.action_incident();
        self.timeline(
            &incident,
            now,
            kind,
            By::person(who),
            About::default(),
            &text,
        )
        .await;
        self.say(None, Kind::Note, text).await;
    }

    pub(super) fn status(&self) -> Status {
        let now = self.clock.now();
        let mut running: Vec<(String, String, String)> = self
            .dispatcher
            .active()
            .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
            .collect();
        running.sort_by(|a, b| a.2.cmp(&b.2));
        let mut firing: Vec<Arc<FiringAlert>> = self.firing.values().cloned().collect();
        firing.sort_by(|a, b| (a.since, &a.name).cmp(&(b.since, &b.name)));
        Status {
            paused: self.dispatcher.paused().cloned(),
            running,
            firing,
            waiting: self.executor.waiting(),
            blind: self.blind_lines(),
            pending: self
                .pending
                .as_ref()
                .map(|rx| rx.borrow().clone())
                .unwrap_or_default(),
            silences: self
                .silences
                .active(now)
                .map(|s| SilenceView {
                    id: s.id.clone(),
                    matchers: s.matchers_text(),
                    ends_at: s.ends_at,
                    by: s.created_by.clone(),
                    comment: s.comment.clone(),
                })
                .collect(),
            incident: self.current_incident(),
        }
    }

    /// Acknowledges every firing alert `target` names (see
    /// [`Command::Ack`]): says so in each incident's thread and timeline.
    pub(super) async fn ack(&mut self, target: &str, who: &Who) -> Result<String, AckError> {
        let by = who.label();
        let by = by.as_str();
        let now = self.clock.now();
        let target = target.trim();
        let by_fp: Vec<u64> = self
            .firing
            .iter()
            .filter(|(_, f)| target.len() >= 4 && f.fingerprint.starts_with(target))
            .map(|(fp, _)| *fp)
            .collect();
        let mut chosen: Vec<u64> = if !by_fp.is_empty() {
            by_fp
        } else {
            self.firing
                .iter()
                .filter(|(_, f)| f.name == target || f.incident == target)
                .map(|(fp, _)| *fp)
                .collect()
        };
        // Named in a stable order, by alert name and labels.
        chosen.sort_by(|a, b| {
            let (a, b) = (&self.firing[a], &self.firing[b]);
            (&a.name, &a.labels).cmp(&(&b.name, &b.labels))
        });
        if chosen.is_empty() {
            let mut names: Vec<String> = self
                .firing
                .values()
                .flat_map(|f| [f.name.clone(), f.incident.clone()])
                .collect();
            names.sort();
            names.dedup();
            if names.is_empty() {
                return Err(AckError::NothingFiring {
                    target: target.to_owned(),
                });
            }
            return Err(AckError::NoMatch {
                target: target.to_owned(),
                hint: crate::diag::did_you_mean(target, &names).map(str::to_owned),
                firing: crate::chat::tally(names, 2 * ACK_LISTED),
            });
        }
        let mut done = Vec::new();
        let mut kept = Vec::new();
        // Per incident: what was acknowledged, and the alert names.
        let mut per_incident: BTreeMap<String, (Vec<String>, BTreeSet<String>)> = BTreeMap::new();
        for fp in chosen {
            let f = Arc::make_mut(self.firing.get_mut(&fp).expect("chosen from firing"));
            if let Some(a) = &f.acked {
                done.push(format!("{} (already acknowledged by {})", f.name, a.by));
                continue;
            }
            f.acked = Some(Acked {
                by: by.to_owned(),
                at: now,
            });
            kept.push(f.fingerprint.clone());
            let text = format!("{}{}", f.name, identifying(&f.labels));
            done.push(text.clone());
            let e = per_incident.entry(f.incident.clone()).or_default();
            e.0.push(text);
            e.1.insert(f.name.clone());
        }
        if let Err(e) = self.store.save_acks(&kept, by, now).await {
            tracing::error!(error = %e, alerts = kept.len(), "cannot record the ack; a restart would forget it");
        }
        // In a storm one ack can take thousands of alerts, most alike:
        // counted, not listed.
        for (incident, (alerts, names)) in per_incident {
            if self.cards.contains_key(&incident) {
                self.card(&incident).ack(by, now);
            }
            let text = format!(
                "{} acknowledged by {by}",
                crate::chat::tally(alerts, ACK_LISTED)
            );
            let about = match names.len() {
                1 => names
                    .into_iter()
                    .next()
                    .map(About::alert)
                    .unwrap_or_default(),
                _ => About::default(),
            };
            self.timeline(&incident, now, tl::Kind::Ack, By::person(who), about, &text)
                .await;
            self.say(Some(&incident), Kind::Note, text).await;
        }
        Ok(format!(
            "acknowledged: {}",
            crate::chat::tally(done, ACK_LISTED)
        ))
    }

    /// Starts a runbook by hand for `by` (see
    /// [`Dispatcher::manual_start`] for what is checked).
    pub(super) async fn run_by_hand(
        &mut self,
        runbook: &str,
        inputs: &BTreeMap<String, Json>,
        by: &Who,
    ) -> Result<String, StartRefused> {
        let now = self.clock.now();
        let plan = self.dispatcher.manual_start(runbook, inputs, now)?;
        // A run started during an incident is part of it; otherwise it is
        // its own, named after what it works on.
        let incident = self
            .current_incident()
            .unwrap_or_else(|| plan.concurrency_key.replace('/', "-"));
        let name = plan.runbook.name.clone();
        let run_id = self.start_run_as(plan, None, &incident, By::person(by), now);
        tracing::info!(run = %run_id, %by, "runbook started by hand");
        Ok(format!(
            "started *{name}* (run {run_id}) in incident {incident}"
        ))
    }

    pub(super) async fn on_command(&mut self, c: Command) {
        let now = self.clock.now();
        match c {
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Pause {
                by: who,
                reason,
                reply,
            } => {
                let by = who.label();
                self.dispatcher.pause(Pause {
                    by: by.clone(),
                    reason: reason.clone(),
                    since: now,
                });
                // Kept, so a restart or a takeover does not resume what a
                // person paused.
                if let Err(e) = self.store.save_pause(&by, &reason, now).await {
                    tracing::error!(error = %e, "cannot record the pause; a restart would resume automation");
                }
                let _ = reply.send(());
                let text = format!("automation paused by {by}: {reason}");
                self.automation_switched(tl::Kind::Paused, &who, now, text)
                    .await;
            }
            Command::Resume { by: who, reply } => {
                let by = who.label();
                self.dispatcher.resume();
                if let Err(e) = self.store.clear_pause().await {
                    tracing::error!(error = %e, "cannot record the resume; a restart would pause automation again");
                }
                let _ = reply.send(());
                let text = format!("automation resumed by {by}");
                self.automation_switched(tl::Kind::Resumed, &who, now, text)
                    .await;
            }
            Command::Answer {
                run,
                verdict,
                by,
                role,
                reply,
            } => {
                let r = self.executor.answer(&run, verdict, &by, role);
                let who = by;
                let by = who.label();
                if let Err(e) = &r {
                    // A refused command is recorded: who tried what.
                    tracing::info!(%run, %by, error = %e, "approval refused");
                    self.say(None, Kind::Note, format!("{by}: {e}")).await;
                    if let crate::executor::AnswerError::NotAllowed { .. } = e {
                        let incident = self.refusal_incident(Some(&run));
                        self.timeline(
                            &incident,
                            now,
                            tl::Kind::CommandRefused,
                            By::person(&who),
                            About {
                                run: Some(run.clone()),
                                ..About::default()
                            },
                            &format!("approval of run {run} refused: {e}"),
                        )
                        .await;
                    }
                }
                let _ = reply.send(r);
            }
            Command::Abort { run, by, reply } => {
                let r = self.executor.abort(&run, &by.label());
                if let Ok(stopped) = &r {
                    let text =
                        format!("run {run} of {} aborted by {}", stopped.runbook, by.label());
                    self.timeline(
                        &stopped.incident,
                        now,
                        tl::Kind::Abort,
                        By::person(&by),
                        About::run(&stopped.runbook, &run),
                        &text,
                    )
                    .await;
                    self.say(None, Kind::Note, text).await;
                }
                let _ = reply.send(r.map(|_| ()));
            }
            Command::Silence {
                matchers,
                duration_ms,
                by,
                comment,
                key,
                reply,
            } => {
                let r = self
                    .add_silence(matchers, duration_ms, by, comment, key)
                    .await;
                let _ = reply.send(r);
            }
            Command::Unsilence { id, by, reply } => {
                let r = self.expire_silence(&id, &by).await;
                let _ = reply.send(r);
            }
            Command::Ack { target, by, reply } => {
                let r = self.ack(&target, &by).await;
                let _ = reply.send(r);
            }
            Command::Run {
                runbook,
                inputs,
                by,
                reply,
            } => {
                let r = self.run_by_hand(&runbook, &inputs, &by).await;
                if let Err(e) = &r {
                    tracing::info!(%runbook, by = %by.label(), error = %e, "manual start refused");
                }
                let _ = reply.send(r);
            }
            Command::Reload { runbooks, reply } => {
                tracing::info!(runbooks = runbooks.len(), "runbooks reloaded");
                self.dispatcher.replace_runbooks(runbooks);
                let _ = reply.send(());
            }
            Command::Checklist(req) => {
                use crate::preflight::task::ChecklistRefused;
                use tokio::sync::mpsc::error::TrySendError;
                match &self.checklists {
                    None => req.refuse(ChecklistRefused::NoRunner),
                    Some(tx) => match tx.try_send(req) {
                        Ok(()) => {}
                        Err(TrySendError::Full(req)) => req.refuse(ChecklistRefused::Busy),
                        Err(TrySendError::Closed(req)) => req.refuse(ChecklistRefused::Stopped),
                    },
                }
            }
            Command::Refused {
                by,
                command,
                reason,
            } => {
                tracing::info!(by = %by.label(), %command, %reason, "command refused");
                // The timeline, because that is what the post-incident
                // review reads: who tried what, when, and why it did not
                // happen.
                let incident = self.refusal_incident(None);
                self.timeline(
                    &incident,
                    now,
                    tl::Kind::CommandRefused,
                    By::person(&by),
                    About::default(),
                    &format!("`{command}` refused: {reason}"),
                )
                .await;
            }
        }
    }
}
