//! The daemon's checklist runner: runs started from chat (`checklist
//! NAME`) and by a checklist's `schedule`, each with one card in the
//! channel that is updated as checks finish, sign-offs from chat, and
//! every run saved to the store with its verdict in the event's timeline.
//!
//! One task owns every run, so a sign-off and a check finishing never
//! race. Requests arrive from the control loop through a bounded queue
//! ([`QUEUE`]); the control loop never waits on it (a full queue is a
//! "busy, try again" reply), and measuring happens in tasks of a
//! [`JoinSet`] this task owns and stops at shutdown.
//!
//! Schedules: a checklist with `schedule: [60m, 10m]` runs by itself at
//! `event.start - 60m` and `- 10m`. A slot is recorded with its run, so a
//! restart does not run it again; a restart that missed slots before the
//! event starts runs the latest missed one at once (a bot that was down at
//! T-10m still says GO or NO-GO before the show).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Instruments, run_id};
use crate::chat::{ChatMessage, Kind, Outbox};
use crate::checklist::state::{RunState, SignError};
use crate::checklist::{CheckResult, Checklist, event_params, report};
use crate::clock::Millis;
use crate::roles::{Role, Who};
use crate::store::Store;
use crate::timeline::{self as tl, About, By, TimelineEntry};

/// Requests waiting for the runner. The control loop `try_send`s: when
/// full, the person is told to try again rather than the loop waiting.
pub const QUEUE: usize = 16;
/// Finished runs kept in memory to answer late sign-offs with "it is
/// over"; the store has them all.
const KEEP_FINISHED: usize = 32;

pub fn queue() -> (mpsc::Sender<Request>, mpsc::Receiver<Request>) {
    mpsc::channel(QUEUE)
}

#[derive(Debug)]
pub enum Request {
    /// Start a run; replies with its id, or why not.
    Start {
        name: String,
        overrides: Vec<(String, String)>,
        by: By,
        reply: oneshot::Sender<Result<String, ChecklistRefused>>,
    },
    /// Sign off a check of a run; replies with what was recorded.
    SignOff {
        run: String,
        check: String,
        by: Who,
        role: Role,
        reply: oneshot::Sender<Result<String, ChecklistRefused>>,
    },
    /// Reloaded checklists, and the runbooks and runbook tests their
    /// `runbook` checks run ([`crate::reload`]). Runs in progress finish
    /// on the version they started with; the schedule is worked out anew.
    Reload {
        lists: Vec<Arc<Checklist>>,
        runbooks: Vec<Arc<crate::runbook::Runbook>>,
        runbook_tests: Vec<(String, String)>,
    },
}

impl Request {
    /// Answers the request with a refusal without running it.
    pub fn refuse(self, why: ChecklistRefused) {
        let reply = match self {
            Request::Start { reply, .. } | Request::SignOff { reply, .. } => reply,
            Request::Reload { .. } => {
                tracing::warn!(%why, "checklist reload not applied");
                return;
            }
        };
        let _ = reply.send(Err(why));
    }
}

/// Why a checklist run was not started or a sign-off not given.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ChecklistRefused {
    #[error("this bot runs no checklists")]
    NoRunner,
    #[error("the checklist runner is busy with other requests; try again in a moment")]
    Busy,
    #[error("the checklist runner has stopped (the bot is shutting down)")]
    Stopped,
    #[error(transparent)]
    NoChecklist(#[from] super::NoChecklist),
    #[error(transparent)]
    Param(#[from] crate::checklist::ParamError),
    #[error(
        "no checklist run {id}; {}",
        if recent.is_empty() { "none is running".to_owned() } else { format!("recent runs: {}", recent.join(", ")) }
    )]
    NoRun { id: String, recent: Vec<String> },
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// The incident whose timeline keeps a run's results: the event's `name`
/// parameter (what alerts of the event carry as their `event` label, the
/// default `incidents.group_by`), else the checklist's name.
pub fn incident_of(r: &RunState) -> String {
    r.event
        .get("name")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map_or_else(|| r.checklist.clone(), str::to_owned)
}

pub struct Task {
    pub lists: Vec<Arc<Checklist>>,
    pub inst: Instruments,
    pub outbox: Outbox,
    pub store: Store,
    pub channel: String,
    /// Where the runs still to come are published, soonest first, each
    /// time the schedule changes ([`ahead`]).
    pub ahead: watch::Sender<Vec<Upcoming>>,
}

/// A scheduled checklist run still to come, for those who look ahead
/// (the console's home page).
#[derive(Clone, Debug, PartialEq)]
pub struct Upcoming {
    pub checklist: String,
    /// `T-10m`, or `T-10m late` for a missed slot run at once.
    pub label: String,
    pub at: Millis,
}

/// The channel [`Task::ahead`] publishes on; a reader always sees the
/// newest schedule, never a backlog (a watch keeps one value).
pub fn ahead() -> (watch::Sender<Vec<Upcoming>>, watch::Receiver<Vec<Upcoming>>) {
    watch::channel(Vec::new())
}

struct Run {
    state: RunState,
    slot: String,
}

/// How far past a slot a starting bot still runs it as scheduled rather
/// than late.
const ON_TIME_GRACE_MS: Millis = 60_000;

/// A scheduled run still to come.
#[derive(Clone, Debug, PartialEq)]
struct Due {
    at: Millis,
    list: usize,
    /// `T-10m@<event start ms>`: what the store remembers.
    slot: String,
    label: String,
}

struct Runner {
    t: Task,
    /// Scheduled runs to come, soonest first.
    due: Vec<Due>,
    runs: BTreeMap<String, Run>,
    finished: std::collections::VecDeque<String>,
    set: JoinSet<(String, CheckResult)>,
    seq: u64,
}

impl Task {
    pub async fn run(self, mut rx: mpsc::Receiver<Request>, shutdown: CancellationToken) {
        let clock = self.inst.clock.clone();
        let due = self.schedule(clock.now()).await;
        let mut r = Runner {
            due,
            t: self,
            runs: BTreeMap::new(),
            finished: Default::default(),
            set: JoinSet::new(),
            seq: 0,
        };
        r.publish_ahead();
        loop {
            let wake = r
                .due
                .first()
                .map(|d| d.at)
                .into_iter()
                .chain(r.runs.values().filter_map(|x| x.state.next_deadline()))
                .min();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                req = rx.recv() => match req {
                    Some(req) => r.handle(req).await,
                    None => break,
                },
                Some(joined) = r.set.join_next(), if !r.set.is_empty() => match joined {
                    Ok((id, result)) => r.recorded(&id, result).await,
                    Err(e) => tracing::error!(error = %e, "a checklist check failed to complete"),
                },
                _ = sleep_until(&clock, wake), if wake.is_some() => {
                    let now = clock.now();
                    while r.due.first().is_some_and(|d| d.at <= now) {
                        let d = r.due.remove(0);
                        r.publish_ahead();
                        let list = r.t.lists[d.list].clone();
                        let by = By::Schedule(d.label.clone());
                        if let Err(e) = r.start(&list, &[], &by, &d.slot).await {
                            tracing::error!(checklist = %list.name, error = %e, "scheduled checklist run failed to start");
                        }
                    }
                    r.expire_all().await;
                }
            }
        }
        r.stop().await;
    }

    /// The scheduled runs ahead of `now` (or just behind it, within
    /// [`ON_TIME_GRACE_MS`]), soonest first, plus at most one
    /// missed slot per checklist to run at once.
    async fn schedule(&self, now: Millis) -> Vec<Due> {
        let ready = now + warmup(&self.inst.config);
        let mut out = Vec::new();
        for (i, list) in self.lists.iter().enumerate() {
            let Some(start) = event_start(list) else {
                continue;
            };
            let done: Vec<String> = match self.store.checklist_runs(&list.name).await {
                Ok(runs) => runs.into_iter().map(|(slot, _)| slot).collect(),
                Err(e) => {
                    tracing::error!(checklist = %list.name, error = %e, "cannot read earlier checklist runs; scheduled runs may repeat");
                    Vec::new()
                }
            };
            let mut missed = None;
            for d in &list.schedule {
                let at = start - d.as_millis() as Millis;
                let due = Due {
                    at,
                    list: i,
                    slot: format!("T-{d}@{start}"),
                    label: format!("T-{d}"),
                };
                if done.contains(&due.slot) {
                    continue;
                }
                // A bot that starts within a minute of a slot (the demo
                // starts at T-60m; its clock has moved on by the time the
                // schedule is read) runs it on time, not late.
                if at + ON_TIME_GRACE_MS >= now {
                    out.push(due);
                } else if now < start && missed.as_ref().is_none_or(|m: &Due| m.at < at) {
                    missed = Some(due);
                }
            }
            if let Some(mut m) = missed {
                // Late: the bot was not running at the slot's time.
                m.label = format!("{} late", m.label);
                m.at = now;
                out.push(m);
            }
        }
        for d in &mut out {
            d.at = d.at.max(ready);
        }
        out.sort_by_key(|d| d.at);
        out
    }
}

/// How long after the start the local series store has had its first
/// scrape of every target: a scheduled run before that would measure
/// nothing and say NO-GO for it. A remote source has data at once.
fn warmup(config: &crate::config::Config) -> Millis {
    if config.remote.is_some() {
        return 0;
    }
    // The first scrape lands within one interval (targets are spread
    // over it), and takes up to its timeout.
    config
        .scrape
        .iter()
        .map(|t| (t.interval.as_millis() + t.timeout.as_millis()) as Millis)
        .max()
        .unwrap_or(0)
}

/// `event.start` in milliseconds, when the checklist has one.
fn event_start(list: &Checklist) -> Option<Millis> {
    let s = list.event.get("start")?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

async fn sleep_until(clock: &crate::clock::Clock, at: Option<Millis>) {
    match at {
        Some(at) => clock.sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Runner {
    /// Says what is due now, for [`Task::ahead`]'s readers.
    fn publish_ahead(&self) {
        let ahead = self
            .due
            .iter()
            .map(|d| Upcoming {
                checklist: self.t.lists[d.list].name.clone(),
                label: d.label.clone(),
                at: d.at,
            })
            .collect();
        self.t.ahead.send_replace(ahead);
    }

    async fn handle(&mut self, req: Request) {
        match req {
            Request::Start {
                name,
                overrides,
                by,
                reply,
            } => {
                let r = match super::find(&self.t.lists, &name) {
                    Ok(list) => {
                        let list = list.clone();
                        self.start(&list, &overrides, &by, "").await
                    }
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(r);
            }
            Request::SignOff {
                run,
                check,
                by,
                role,
                reply,
            } => {
                let r = self.sign(&run, &check, &by, role).await;
                let _ = reply.send(r);
            }
            Request::Reload {
                lists,
                runbooks,
                runbook_tests,
            } => {
                self.t.lists = lists;
                self.t.inst.runbooks = runbooks;
                self.t.inst.runbook_tests = Arc::new(runbook_tests);
                let mut due = self.t.schedule(self.t.inst.clock.now()).await;
                // A scheduled run still in progress is not saved yet; its
                // slot must not be taken for a missed one.
                due.retain(|d| !self.runs.values().any(|x| x.slot == d.slot));
                tracing::info!(
                    checklists = self.t.lists.len(),
                    scheduled = due.len(),
                    "checklists reloaded"
                );
                self.due = due;
                self.publish_ahead();
            }
        }
    }

    async fn start(
        &mut self,
        list: &Arc<Checklist>,
        overrides: &[(String, String)],
        by: &By,
        slot: &str,
    ) -> Result<String, ChecklistRefused> {
        let event = event_params(list, overrides)?;
        let now = self.t.inst.clock.now();
        self.seq += 1;
        let id = run_id(&list.name, now, self.seq);
        let state = RunState::new(&id, list, event, by, now);
        super::spawn_measures(list, &state, &self.t.inst, &mut self.set);
        tracing::info!(checklist = %list.name, run = %id, %by, "checklist run started");
        self.runs.insert(
            id.clone(),
            Run {
                state,
                slot: slot.to_owned(),
            },
        );
        // A checklist of sign-offs alone has nothing to wait for.
        self.changed(&id).await;
        Ok(format!(
            "checking *{}* (run {id}); the card in {} shows each check as it finishes",
            list.name, self.t.channel
        ))
    }

    async fn recorded(&mut self, id: &str, result: CheckResult) {
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        run.state.record(result);
        self.changed(id).await;
    }

    async fn sign(
        &mut self,
        id: &str,
        check: &str,
        who: &Who,
        role: Role,
    ) -> Result<String, ChecklistRefused> {
        let now = self.t.inst.clock.now();
        let Some(run) = self.runs.get_mut(id) else {
            return Err(ChecklistRefused::NoRun {
                id: id.to_owned(),
                recent: self.runs.keys().cloned().collect(),
            });
        };
        let incident = incident_of(&run.state);
        let said = match run.state.sign(check, &who.id, &who.label(), role, now) {
            Ok(said) => said,
            Err(e) => {
                // A sign-off above the person's role is a refusal, and
                // every refusal is on the record; a mistyped check is not.
                if let SignError::Role { .. } = e {
                    let text = format!(
                        "sign-off of {check} (checklist {}, run {id}) refused: {e}",
                        run.state.checklist
                    );
                    let entry = TimelineEntry::new(
                        &incident,
                        now,
                        tl::Kind::CommandRefused,
                        By::person(who),
                        About::default(),
                        text,
                    );
                    if let Err(e) = self.t.store.append_timeline(&entry).await {
                        tracing::error!(error = %e, "cannot record the refused sign-off in the timeline");
                    }
                }
                return Err(e.into());
            }
        };
        let text = format!("checklist {} (run {id}): {said}", run.state.checklist);
        let entry = TimelineEntry::new(
            &incident,
            now,
            tl::Kind::Signoff,
            By::person(who),
            About::default(),
            text,
        );
        if let Err(e) = self.t.store.append_timeline(&entry).await {
            tracing::error!(error = %e, "cannot record the sign-off in the timeline");
        }
        self.changed(id).await;
        Ok(said)
    }

    async fn expire_all(&mut self) {
        let now = self.t.inst.clock.now();
        let ids: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, r)| r.state.next_deadline().is_some_and(|d| d <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.changed(&id).await;
        }
    }

    /// After any change: settle the run, save it, post its card, and when
    /// it is over, write its verdict to the timeline.
    async fn changed(&mut self, id: &str) {
        let now = self.t.inst.clock.now();
        let Some(run) = self.runs.get_mut(id) else {
            return;
        };
        let was_over = run.state.finished_at.is_some();
        let over = run.state.settle(now);
        let (state, slot) = (run.state.clone(), run.slot.clone());
        self.publish(&state, &slot, now).await;
        if over && !was_over {
            self.over(&state, now).await;
        }
    }

    async fn publish(&self, state: &RunState, slot: &str, now: Millis) {
        if let Err(e) = self.t.store.save_checklist_run(state, slot).await {
            tracing::error!(run = %state.id, error = %e, "cannot save the checklist run");
        }
        let msg = ChatMessage {
            channel: self.t.channel.clone(),
            incident: None,
            kind: Kind::Note,
            text: report::card_text(state),
            at: now,
            slot: Some(format!("checklist:{}", state.id)),
            checklist: Some(Box::new(state.clone())),
            ..Default::default()
        };
        if let Err(e) = self.t.outbox.post(&msg).await {
            tracing::error!(run = %state.id, error = %e, "cannot post the checklist card");
        }
    }

    async fn over(&mut self, state: &RunState, now: Millis) {
        tracing::info!(checklist = %state.checklist, run = %state.id, verdict = ?state.verdict(), "checklist run finished");
        // A run saved before `starter` was recorded has only its label.
        let by = state
            .starter
            .clone()
            .unwrap_or_else(|| crate::timeline::legacy::by(&state.started_by));
        let entry = TimelineEntry::new(
            incident_of(state),
            now,
            tl::Kind::Checklist,
            by,
            About::default(),
            report::timeline_text(state),
        );
        if let Err(e) = self.t.store.append_timeline(&entry).await {
            tracing::error!(run = %state.id, error = %e, "cannot record the checklist verdict in the timeline");
        }
        self.finished.push_back(state.id.clone());
        while self.finished.len() > KEEP_FINISHED {
            if let Some(old) = self.finished.pop_front() {
                self.runs.remove(&old);
            }
        }
    }

    /// Shutdown: measuring stops, and runs still open end as they stand
    /// (unfinished checks are errors, so never a GO nobody measured).
    async fn stop(&mut self) {
        self.set.shutdown().await;
        let now = self.t.inst.clock.now();
        let open: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, r)| r.state.finished_at.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in open {
            if let Some(run) = self.runs.get_mut(&id) {
                run.state.close(now);
                let (state, slot) = (run.state.clone(), run.slot.clone());
                self.publish(&state, &slot, now).await;
                self.over(&state, now).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checklist::{Env, parse_checklist};
    use crate::clock::Clock;

    const MIN: Millis = 60_000;
    /// 2023-05-24T22:00:00Z, the launch.
    const START: Millis = 1_684_965_600_000;

    fn list() -> Arc<Checklist> {
        Arc::new(
            parse_checklist(
                "x.yaml",
                r#"kind: checklist
name: launch-readiness
event: {name: launch, start: "2023-05-24T18:00:00-04:00"}
schedule: [1h, 10m]
checks:
  - name: capacity
    query: {expr: 'max(live_room_capacity)', expect: "> 0"}
"#,
                &Env::default(),
            )
            .unwrap(),
        )
    }

    async fn task(store: &Store, clock: &Clock) -> Task {
        Task {
            lists: vec![list()],
            inst: Instruments {
                // Nothing to measure with: every run is NO-GO at once.
                queries: None,
                http: crate::net::target_client().unwrap(),
                config: Arc::new(crate::config::Config::default()),
                runbooks: Vec::new(),
                runbook_tests: Arc::new(Vec::new()),
                clock: clock.clone(),
            },
            outbox: Outbox::new(store.clone()),
            store: store.clone(),
            channel: "#launch".into(),
            ahead: ahead().0,
        }
    }

    /// Issue 24: the console's home page names the next scheduled run;
    /// what is ahead is published as the schedule changes.
    #[tokio::test]
    async fn the_runs_still_to_come_are_published_as_they_change() {
        crate::net::install_crypto_provider();
        let store = Store::open("sqlite::memory:").await.unwrap();
        let clock = Clock::manual(START - 90 * MIN);
        let stop = CancellationToken::new();
        let (_tx, rx) = queue();
        let (ahead_tx, mut ahead) = ahead();
        let mut runner = task(&store, &clock).await;
        runner.ahead = ahead_tx;
        let t = tokio::spawn(runner.run(rx, stop.clone()));
        let seen = |a: &[Upcoming]| {
            a.iter()
                .map(|u| (u.checklist.clone(), u.label.clone(), u.at))
                .collect::<Vec<_>>()
        };
        ahead.changed().await.unwrap();
        assert_eq!(
            seen(&ahead.borrow_and_update()),
            [
                ("launch-readiness".into(), "T-1h".into(), START - 60 * MIN),
                ("launch-readiness".into(), "T-10m".into(), START - 10 * MIN),
            ]
        );
        clock.advance_to(START - 60 * MIN);
        ahead.changed().await.unwrap();
        assert_eq!(
            seen(&ahead.borrow_and_update()),
            [("launch-readiness".into(), "T-10m".into(), START - 10 * MIN)]
        );
        stop.cancel();
        t.await.unwrap();

        // Back after T-10m passed: the missed slot is ahead, at once, late.
        clock.advance_to(START - 5 * MIN);
        let fresh = Store::open("sqlite::memory:").await.unwrap();
        let stop = CancellationToken::new();
        let (_tx, rx) = queue();
        let (ahead_tx, mut ahead) = super::ahead();
        let mut runner = task(&fresh, &clock).await;
        runner.ahead = ahead_tx;
        // Held at the schedule: the run starts at once and empties it.
        let t = tokio::spawn(runner.run(rx, stop.clone()));
        ahead.changed().await.unwrap();
        let first = seen(&ahead.borrow_and_update());
        assert!(
            first.is_empty()
                || first
                    == [(
                        "launch-readiness".into(),
                        "T-10m late".into(),
                        START - 5 * MIN
                    )],
            "{first:?}"
        );
        settle(&fresh, 1).await;
        assert!(ahead.borrow().is_empty(), "nothing is left to come");
        stop.cancel();
        t.await.unwrap();
    }

    async fn slots(store: &Store) -> Vec<(String, String)> {
        store
            .checklist_runs("launch-readiness")
            .await
            .unwrap()
            .into_iter()
            .map(|(slot, r)| (slot, r.started_by))
            .collect()
    }

    async fn settle(store: &Store, n: usize) {
        for _ in 0..200 {
            if slots(store).await.len() >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_bot_started_within_a_minute_of_a_slot_is_on_time() {
        crate::net::install_crypto_provider();
        let store = Store::open("sqlite::memory:").await.unwrap();
        let clock = Clock::manual(START - 60 * MIN + 30_000);
        let stop = CancellationToken::new();
        let (_tx, rx) = queue();
        let t = tokio::spawn(task(&store, &clock).await.run(rx, stop.clone()));
        settle(&store, 1).await;
        assert_eq!(
            slots(&store).await,
            [(format!("T-1h@{START}"), "schedule T-1h".into())]
        );
        stop.cancel();
        t.await.unwrap();
    }

    #[tokio::test]
    async fn scheduled_runs_happen_once_and_a_missed_one_runs_late() {
        crate::net::install_crypto_provider();
        let store = Store::open("sqlite::memory:").await.unwrap();
        let clock = Clock::manual(START - 90 * MIN);
        let stop = CancellationToken::new();
        let (_tx, rx) = queue();
        let t = tokio::spawn(task(&store, &clock).await.run(rx, stop.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(slots(&store).await.is_empty(), "nothing is due at T-90m");
        clock.advance_to(START - 60 * MIN);
        settle(&store, 1).await;
        let t60 = format!("T-1h@{START}");
        assert_eq!(slots(&store).await, [(t60.clone(), "schedule T-1h".into())]);
        stop.cancel();
        t.await.unwrap();

        // Down over T-10m; back at T-5m: T-10m runs late, T-1h not again.
        clock.advance_to(START - 5 * MIN);
        let stop = CancellationToken::new();
        let (_tx, rx) = queue();
        let t = tokio::spawn(task(&store, &clock).await.run(rx, stop.clone()));
        settle(&store, 2).await;
        assert_eq!(
            slots(&store).await,
            [
                (t60.clone(), "schedule T-1h".into()),
                (format!("T-10m@{START}"), "schedule T-10m late".into()),
            ]
        );
        stop.cancel();
        t.await.unwrap();

        // After the start nothing runs by itself.
        clock.advance_to(START + MIN);
        let fresh = Store::open("sqlite::memory:").await.unwrap();
        let stop = CancellationToken::new();
        let (_tx, rx) = queue();
        let t = tokio::spawn(task(&fresh, &clock).await.run(rx, stop.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(slots(&fresh).await.is_empty());
        stop.cancel();
        t.await.unwrap();

        // The results are in the event's timeline and the channel.
        let timeline = store.timeline("launch").await.unwrap();
        assert_eq!(timeline.len(), 2);
        assert!(
            timeline[0]
                .text
                .starts_with("checklist launch-readiness (run launch-readiness-")
        );
        assert!(
            timeline[0].text.contains(
                "NO-GO: 1 of 1 blockers did not pass: capacity; capacity ERROR: no metrics source"
            ),
            "{}",
            timeline[0].text
        );
        assert_eq!(timeline[0].by, By::Schedule("T-1h".into()));
    }

    #[tokio::test]
    async fn requests_are_answered_and_unknown_runs_named() {
        crate::net::install_crypto_provider();
        let store = Store::open("sqlite::memory:").await.unwrap();
        let clock = Clock::manual(START + MIN);
        let stop = CancellationToken::new();
        let (tx, rx) = queue();
        let t = tokio::spawn(task(&store, &clock).await.run(rx, stop.clone()));
        let ask = |req: fn(oneshot::Sender<Result<String, ChecklistRefused>>) -> Request| {
            let tx = tx.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                tx.send(req(reply)).await.unwrap();
                answer.await.unwrap().map_err(|e| e.to_string())
            }
        };
        let r = ask(|reply| Request::SignOff {
            run: "nope".into(),
            check: "x".into(),
            by: Who::new("U1", "alice"),
            role: Role::Commander,
            reply,
        })
        .await;
        assert_eq!(r, Err("no checklist run nope; none is running".into()));
        let r = ask(|reply| Request::Start {
            name: "launch-readiness".into(),
            overrides: vec![("nope".into(), "1".into())],
            by: By::Person(Who::new("U1", "alice")),
            reply,
        })
        .await;
        assert_eq!(
            r,
            Err("launch-readiness has no event parameter \"nope\"; it has name, start".into())
        );
        let r = ask(|reply| Request::Start {
            name: "launch-readiness".into(),
            overrides: vec![],
            by: By::Person(Who::new("U1", "alice")),
            reply,
        })
        .await
        .unwrap();
        assert!(
            r.starts_with("checking *launch-readiness* (run launch-readiness-"),
            "{r}"
        );
        stop.cancel();
        t.await.unwrap();
    }
}
