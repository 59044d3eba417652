//! The watcher: owns the series store and the rule engine. Scrape batches
//! come in, rules are evaluated when their groups are due, and alert
//! transitions go out to the control loop. One task owns both, so the
//! model code needs no locks. Runbooks' queries reach the same task through
//! a bounded request queue ([`Queries`]); with a remote source they go
//! straight to the remote API and never touch the task.
//!
//! Alerts pushed over HTTP (Alertmanager's webhook, `POST /api/v2/alerts`)
//! come in here too ([`Pushed`]), so one task says what fires, saves it, and
//! sends the transitions, whichever way an alert arrived.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Millis};
use crate::labels::METRIC_NAME;
use crate::promql::LOOKBACK_MS;
use crate::promql::Value;
use crate::promql::lookback::max_lookback;
use crate::rules::EvalOutcome;
use crate::rules::{AlertEvent, PendingAlert, REMOTE_TEMPLATE_QUERY, Rule, RuleEngine, RuleGroup};
use crate::sight::{Board, Change, Sense, Sight};
use crate::source::ScrapeBatch;
use crate::source::exposition::parse_series;
use crate::source::remote::RemoteApi;
use crate::source::scrape::attach_target_labels;
use crate::store::Store;
use crate::tsdb::SeriesStore;

/// How long the series store must keep samples for these rules: the
/// furthest any rule reads back, plus one evaluation interval so a late
/// evaluation still finds its window. At least the 5m lookback, so ad-hoc
/// queries over instant selectors work with no rules loaded.
pub fn retention_for(groups: &[RuleGroup]) -> Millis {
    groups
        .iter()
        .flat_map(|g| {
            g.rules.iter().map(move |r| {
                let expr = match r {
                    Rule::Alerting(a) => &a.expr,
                    Rule::Recording(r) => &r.expr,
                };
                max_lookback(expr) + g.interval_ms
            })
        })
        .max()
        .unwrap_or(0)
        .max(LOOKBACK_MS)
}

pub struct Watcher {
    pub engine: RuleEngine,
    pub series: SeriesStore,
    /// Where alert state is saved after evaluations, so a restart resumes
    /// `for` timers instead of resetting them (and does not fire again).
    pub state: Option<Store>,
    /// When set, rules read from this Prometheus-compatible API instead of
    /// the local series store.
    pub remote: Option<RemoteApi>,
    /// Alerts pushed over HTTP, when the daemon takes them.
    pub pushed: Option<Pushed>,
    /// New rule groups from a reload ([`crate::reload`]), when the daemon
    /// reloads.
    pub reloads: Option<mpsc::Receiver<Vec<RuleGroup>>>,
    /// Where the watcher says what it cannot see, when anyone listens.
    pub sight: Option<Sighting>,
    /// Alerts waiting out their `for`, after each evaluation, for `status`,
    /// `alerts` and the API: pending alerts send no event when they stop
    /// without firing, so only the engine knows them.
    pub pending: Option<watch::Sender<Arc<Vec<PendingAlert>>>>,
}

/// What the watcher can and cannot see (its scrape targets, the remote
/// API, its rules, pushed alerts), and who is told.
pub struct Sighting {
    pub sight: Sight,
    /// What `/-/ready` and `/metrics` read.
    pub board: Board,
    /// To the control loop, which says each change in chat. Changes are
    /// rare (once per loss, once per recovery); when the queue is full the
    /// watcher waits, as it does for alerts, so none is dropped.
    pub changes: mpsc::Sender<Change>,
    /// Changes not yet sent, in order.
    pending: Vec<Change>,
}

impl Sighting {
    /// `push_deadman`: pushed alerts expected at least this often, from
    /// `now` on (`server.deadman`).
    pub fn new(
        board: Board,
        changes: mpsc::Sender<Change>,
        push_deadman: Option<Millis>,
        now: Millis,
    ) -> Sighting {
        let mut sight = Sight::new();
        if let Some(every) = push_deadman {
            sight.expect_pushes(every, now);
        }
        Sighting {
            sight,
            board,
            changes,
            pending: Vec::new(),
        }
    }

    fn note(&mut self, change: Option<Change>) {
        if let Some(c) = change {
            self.board.apply(&c);
            crate::metrics::count_blind(&self.board);
            match &c {
                Change::Lost { sense, lost } => {
                    tracing::warn!(what = %sense, since = lost.since, why = %lost.why, "blind")
                }
                Change::Back { sense, .. } => tracing::info!(what = %sense, "seeing again"),
            }
            self.pending.push(c);
        }
    }

    fn saw(&mut self, sense: &Sense, now: Millis) {
        let c = self.sight.saw(sense, now);
        self.note(c);
    }

    fn failed(&mut self, sense: &Sense, why: &str, now: Millis) {
        let c = self.sight.failed(sense, why, now);
        self.note(c);
    }
}

/// Requests' worth of pushed alerts waiting for the watcher. When full, the
/// HTTP handler waits (see [`crate::api`]), then answers 503 so the sender
/// tries again: Alertmanager retries, Prometheus pushes again within its
/// resend delay. An alert is never dropped after a 2xx.
pub const PUSHED_QUEUE: usize = 256;

/// The pushed alerts' state and the queue requests arrive on.
pub struct Pushed {
    pub alerts: crate::rules::pushed::PushedAlerts,
    /// Taken by [`Watcher::run`], which reads it.
    rx: Option<mpsc::Receiver<Vec<crate::source::alertmanager::Incoming>>>,
}

impl Pushed {
    /// A queue for pushed alerts and the state that takes them.
    pub fn new(
        resolve_timeout: Millis,
    ) -> (
        mpsc::Sender<Vec<crate::source::alertmanager::Incoming>>,
        Pushed,
    ) {
        let (tx, rx) = mpsc::channel(PUSHED_QUEUE);
        let alerts = crate::rules::pushed::PushedAlerts::new(resolve_timeout);
        (
            tx,
            Pushed {
                alerts,
                rx: Some(rx),
            },
        )
    }
}

/// Runbook queries waiting for the watcher task. When full, callers wait
/// for room: a burst of steps slows down rather than failing, and the
/// watcher is never made to hold more than this.
pub const QUERY_QUEUE: usize = 64;

/// Why a runbook's query could not be answered.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The expression does not parse; the parser's message.
    #[error("bad expression: {0}")]
    BadExpr(String),
    /// It parsed but could not be evaluated (types, matching, or the
    /// remote server refused it).
    #[error("evaluation failed: {0}")]
    Eval(String),
    /// The remote source did not answer; worth asking again.
    #[error("metrics source unavailable: {0}")]
    Unavailable(String),
    /// The watcher has stopped (shutdown): nothing will answer.
    #[error("the watcher has stopped; no query can be answered")]
    Closed,
}

impl QueryError {
    /// Only a source that did not answer is worth asking again.
    pub fn retryable(&self) -> bool {
        matches!(self, QueryError::Unavailable(_))
    }
}

impl From<crate::promql::QueryError> for QueryError {
    fn from(e: crate::promql::QueryError) -> Self {
        match e {
            crate::promql::QueryError::Parse(p) => QueryError::BadExpr(p.to_string()),
            crate::promql::QueryError::Eval(e) => QueryError::Eval(e.to_string()),
        }
    }
}

impl From<crate::source::remote::RemoteError> for QueryError {
    fn from(e: crate::source::remote::RemoteError) -> Self {
        use crate::source::remote::RemoteError;
        match &e {
            RemoteError::Api { error_type, .. } if error_type == "bad_data" => {
                QueryError::BadExpr(e.to_string())
            }
            _ if e.retryable() => QueryError::Unavailable(e.to_string()),
            _ => QueryError::Eval(e.to_string()),
        }
    }
}

/// One query for the watcher task; parsed by the caller so a bad
/// expression never costs the task anything.
pub struct QueryRequest {
    expr: crate::promql::Expr,
    /// When to evaluate, one answer each; empty is once, at the watcher's
    /// now. Several times in one request cost the task one wake-up.
    at: Vec<Millis>,
    reply: oneshot::Sender<Result<Vec<Value>, QueryError>>,
}

impl QueryRequest {
    fn answer(self, series: &SeriesStore, now: Millis) {
        let times = if self.at.is_empty() {
            vec![now]
        } else {
            self.at
        };
        let result = times
            .into_iter()
            .map(|t| crate::promql::eval_instant(&self.expr, series, t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueryError::Eval(e.to_string()));
        // A caller that gave up (its step timed out) is not an error.
        let _ = self.reply.send(result);
    }
}

/// The watcher's end of the query queue, handed to [`Watcher::run`].
pub struct QueryRequests(mpsc::Receiver<QueryRequest>);

/// Runbooks' handle for instant queries at the bot's `now`. Cheap to clone.
#[derive(Clone)]
pub struct Queries {
    tx: mpsc::Sender<QueryRequest>,
    /// When set, queries go here directly: a slow remote answer must not
    /// hold up scrapes and rule evaluation in the watcher task.
    remote: Option<RemoteApi>,
    clock: Clock,
}

/// A query handle and the queue end the watcher task serves.
pub fn queries(remote: Option<RemoteApi>, clock: Clock) -> (Queries, QueryRequests) {
    let (tx, rx) = mpsc::channel(QUERY_QUEUE);
    (Queries { tx, remote, clock }, QueryRequests(rx))
}

impl Queries {
    /// Evaluates `expr` at the bot's current time, against the remote API
    /// when there is one, else against the watcher's series store.
    pub async fn query(&self, expr: &str) -> Result<Value, QueryError> {
        let mut v = self.ask(expr, Vec::new()).await?;
        v.pop().ok_or(QueryError::Closed)
    }

    /// Evaluates `expr` as of each of `times` (charts look back over a
    /// window). The local series store answers only as far back as it
    /// keeps samples.
    pub async fn query_at(&self, expr: &str, times: Vec<Millis>) -> Result<Vec<Value>, QueryError> {
        self.ask(expr, times).await
    }

    async fn ask(&self, expr: &str, at: Vec<Millis>) -> Result<Vec<Value>, QueryError> {
        // A runbook renders its query from alert labels: an expression
        // nested too deep is refused before it reaches any parser, ours or
        // the remote Prometheus's.
        crate::promql::check_bounds(expr).map_err(|e| QueryError::BadExpr(e.to_string()))?;
        if let Some(api) = &self.remote {
            if at.is_empty() {
                return Ok(vec![api.query(expr, self.clock.now()).await?]);
            }
            let mut out = Vec::with_capacity(at.len());
            for t in at {
                out.push(api.query(expr, t).await?);
            }
            return Ok(out);
        }
        // Parsing is bounded but not free; it runs beside the runtime's
        // workers, which keep scrapes and commands moving meanwhile.
        let text = expr.to_owned();
        let expr = tokio::task::spawn_blocking(move || crate::promql::parse(&text))
            .await
            .map_err(|_| QueryError::Closed)?
            .map_err(|e| QueryError::BadExpr(e.to_string()))?;
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(QueryRequest { expr, at, reply })
            .await
            .map_err(|_| QueryError::Closed)?;
        answer.await.map_err(|_| QueryError::Closed)?
    }
}

/// Answers runbook queries from a fixed series store at the clock's now,
/// until every [`Queries`] handle is gone: the watcher's stand-in where
/// there are recorded series but nothing to scrape (`firebreak test
/// runbooks`).
pub async fn serve_fixed(mut queries: QueryRequests, series: SeriesStore, clock: Clock) {
    while let Some(req) = queries.0.recv().await {
        req.answer(&series, clock.now());
    }
}

/// Remote queries of one group in flight at once: enough to evaluate a
/// large group within its interval without flooding the server.
const REMOTE_CONCURRENCY: usize = 16;

/// Fetches each expression's result at `ts`, at most
/// [`REMOTE_CONCURRENCY`] at a time, in the order given.
async fn fetch_all(
    api: &RemoteApi,
    exprs: &[String],
    ts: Millis,
) -> Vec<Result<Value, crate::source::remote::RemoteError>> {
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(REMOTE_CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for (i, e) in exprs.iter().enumerate() {
        let (api, e, limit) = (api.clone(), e.clone(), limit.clone());
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            (i, api.query(&e, ts).await)
        });
    }
    let mut out: Vec<Option<Result<Value, crate::source::remote::RemoteError>>> =
        (0..exprs.len()).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        match r {
            Ok((i, v)) => out[i] = Some(v),
            Err(e) => tracing::error!(error = %e, "remote query task failed"),
        }
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(crate::source::remote::RemoteError::Connect {
                    url: api.base.to_string(),
                    detail: "the query task failed".into(),
                })
            })
        })
        .collect()
}

impl Watcher {
    /// Applies one scrape: its samples (or staleness, if it failed) and
    /// the series Prometheus records about every scrape of a target: `up`,
    /// `scrape_duration_seconds`, `scrape_samples_scraped` and
    /// `scrape_series_added`.
    pub fn ingest(&mut self, batch: ScrapeBatch) {
        let (up, scraped, added) = match &batch.result {
            Ok(scraped) => {
                let format = scraped.format();
                let tl = &batch.target_labels;
                let before = self.series.series_count();
                let o = self
                    .series
                    .ingest_raw(&batch.target, batch.at, scraped.samples(), |key| {
                        let mut l = parse_series(key, format).map_err(|e| e.to_string())?;
                        attach_target_labels(&mut l, tl);
                        Ok(l)
                    });
                // One line per scrape, not per sample: a target exposing
                // thousands of duplicates must not flood the log.
                if let Some(e) = o.rejected.first() {
                    tracing::warn!(target = %batch.target, rejected = o.rejected.len(), first = %e, "samples not stored");
                }
                if let Some(e) = o.unreadable.first() {
                    tracing::warn!(target = %batch.target, unreadable = o.unreadable.len(), first = %e, "series not stored");
                }
                let added = self.series.series_count().saturating_sub(before);
                (1.0, scraped.len(), added)
            }
            Err(_) => {
                self.series.mark_target_stale(&batch.target, batch.at);
                (0.0, 0, 0)
            }
        };
        let m = crate::metrics::get();
        m.scrape_seconds
            .with(&[&batch.target])
            .observe(batch.duration_ms as f64 / 1000.0);
        m.source_up.with(&[&batch.target]).set(up);
        if let Some(s) = &mut self.sight {
            let sense = Sense::Scrape {
                target: batch.target.clone(),
            };
            match &batch.result {
                Ok(_) => s.saw(&sense, batch.at),
                Err(why) => s.failed(&sense, why, batch.at),
            }
        }
        let report = [
            ("up", up),
            ("scrape_duration_seconds", batch.duration_ms as f64 / 1000.0),
            ("scrape_samples_scraped", scraped as f64),
            ("scrape_series_added", added as f64),
        ];
        for (name, v) in report {
            let labels = batch.target_labels.clone().with(METRIC_NAME, name);
            if let Err(e) = self.series.append(labels, batch.at, v) {
                tracing::warn!(target = %batch.target, error = %e, "cannot record {name}");
            }
        }
    }

    /// Evaluates the due groups, locally or through the remote API, and
    /// notes what failed: the remote source not answering, or a rule.
    pub async fn evaluate(&mut self, now: Millis) -> EvalOutcome {
        let Some(api) = self.remote.clone() else {
            let out = self.engine.eval_due(&mut self.series, now);
            self.note_rules(&out, now);
            return out;
        };
        let mut out = EvalOutcome::default();
        // The first reason the source did not answer this pass, if any.
        let mut unanswered: Option<String> = None;
        let mut answered = false;
        for due in self.engine.due(now) {
            let results = fetch_all(&api, &due.exprs, due.ts).await;
            for r in &results {
                match r {
                    Err(e) if e.retryable() => {
                        unanswered.get_or_insert_with(|| e.to_string());
                    }
                    _ => answered = true,
                }
            }
            // Loading refuses templates that query when rules run through
            // a remote API (see `RuleFileOptions::template_queries`).
            self.engine.eval_group_with(
                &due,
                &mut self.series,
                &mut out,
                &mut |i, _, _, _| results[i].clone().map_err(|e| e.to_string()),
                &|_, _, _| Err(REMOTE_TEMPLATE_QUERY.to_owned()),
            );
        }
        if out.evaluated.is_empty() {
            return out;
        }
        let up = unanswered.is_none() || answered;
        crate::metrics::get()
            .source_up
            .with(&["remote"])
            .set(if up { 1.0 } else { 0.0 });
        if let Some(s) = &mut self.sight {
            match &unanswered {
                Some(why) if !answered => s.failed(&Sense::Remote, why, now),
                _ => s.saw(&Sense::Remote, now),
            }
        }
        // Rules that failed because the source did not answer are the
        // source's loss, said once, not one loss per rule.
        if unanswered.is_none() {
            self.note_rules(&out, now);
        } else {
            self.count_rules(&out);
        }
        out
    }

    /// Counts the evaluations and failures of `out`, by group.
    fn count_rules(&self, out: &EvalOutcome) {
        let m = crate::metrics::get();
        for (group, ts) in &out.evaluated {
            let rules = self
                .engine
                .groups()
                .find(|g| &g.name == group)
                .map_or(0, |g| g.rules.len());
            m.rule_evaluations.with(&[group]).add(rules as u64);
            m.rule_group_last_evaluation
                .with(&[group])
                .set(*ts as f64 / 1000.0);
        }
        for e in &out.errors {
            m.rule_evaluation_failures.with(&[&e.group]).inc();
        }
    }

    /// Counts, then notes each evaluated rule as seen or failed. Rules are
    /// known by group and name, as their errors name them; a name two
    /// rules share is seen only when neither failed.
    fn note_rules(&mut self, out: &EvalOutcome, now: Millis) {
        self.count_rules(out);
        let Some(s) = &mut self.sight else { return };
        for e in &out.errors {
            let sense = Sense::Rule {
                group: e.group.clone(),
                rule: e.rule.clone(),
            };
            s.failed(&sense, &e.message, now);
        }
        for (group, _) in &out.evaluated {
            let Some(g) = self.engine.groups().find(|g| &g.name == group) else {
                continue;
            };
            for rule in &g.rules {
                let name = rule.name();
                if out
                    .errors
                    .iter()
                    .any(|e| &e.group == group && e.rule == name)
                {
                    continue;
                }
                let sense = Sense::Rule {
                    group: group.clone(),
                    rule: name.to_owned(),
                };
                s.saw(&sense, now);
            }
        }
    }

    /// Saves alert state when there is any, or when it just changed (so a
    /// cleared state is saved too). A failure is logged: the bot runs on,
    /// it would only restart with older state.
    async fn save_state(&mut self, now: Millis, changed: bool) {
        let Some(store) = &self.state else { return };
        let pushed = self.pushed.as_ref().is_some_and(|p| !p.alerts.is_empty());
        if !changed && !pushed && self.engine.all_alerts().next().is_none() {
            return;
        }
        let mut snapshot = self.engine.snapshot_state(now);
        if let Some(p) = &self.pushed {
            snapshot.pushed = p.alerts.alerts().cloned().collect();
        }
        match serde_json::to_string(&snapshot) {
            Ok(json) => {
                if let Err(e) = store.save_rule_state(now, &json).await {
                    tracing::error!(error = %e, "cannot save alert state");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot serialise alert state"),
        }
    }

    /// Restores alert state saved by an earlier run. Unreadable state is
    /// logged and skipped: alerts then start afresh, as on a first start.
    /// Returns the alerts restored as firing: they do not fire again, so
    /// the control loop must check that the earlier process acted on them
    /// (see [`crate::control::Control::dispatch_restored`]).
    pub async fn restore(&mut self, store: &Store, now: Millis) -> Vec<crate::rules::Alert> {
        self.restore_saved(store, now).await;
        let mut firing: Vec<crate::rules::Alert> = self
            .engine
            .active_alerts()
            .into_iter()
            .filter(|a| a.state == crate::rules::AlertState::Firing)
            .collect();
        if let Some(p) = &self.pushed {
            firing.extend(p.alerts.alerts().map(|p| p.alert.clone()));
        }
        firing
    }

    async fn restore_saved(&mut self, store: &Store, now: Millis) {
        match store.load_rule_state().await {
            Ok(None) => {}
            Ok(Some((_, json))) => match serde_json::from_str::<crate::rules::StateSnapshot>(&json)
            {
                Ok(mut snapshot) => {
                    let pushed = std::mem::take(&mut snapshot.pushed);
                    if let Some(p) = &mut self.pushed {
                        tracing::info!(restored = pushed.len(), "pushed alerts restored");
                        p.alerts.restore(pushed);
                    }
                    let n = self.engine.restore_state(snapshot, now);
                    tracing::info!(restored = n, "alert state restored");
                }
                Err(e) => {
                    tracing::error!(error = %e, "saved alert state is unreadable; starting afresh")
                }
            },
            Err(e) => tracing::error!(error = %e, "cannot load saved alert state; starting afresh"),
        }
    }

    /// Sets the alerts-by-state gauges: pending and firing from the rules,
    /// plus firing pushed alerts.
    fn count_alerts(&self) {
        let (mut pending, mut firing) = (0usize, 0usize);
        for a in self.engine.all_alerts() {
            match a.state {
                crate::rules::AlertState::Pending => pending += 1,
                crate::rules::AlertState::Firing => firing += 1,
                crate::rules::AlertState::Inactive => {}
            }
        }
        firing += self.pushed.as_ref().map_or(0, |p| p.alerts.len());
        let m = crate::metrics::get();
        m.alerts.with(&["pending"]).set(pending as f64);
        m.alerts.with(&["firing"]).set(firing as f64);
    }

    /// Answers one runbook query from the local series store.
    fn answer(&self, req: QueryRequest, now: Millis) {
        req.answer(&self.series, now);
    }

    /// Swaps in reloaded rule groups, keeping the alert state of the rules
    /// that stay (see [`RuleEngine::replace_groups`]); returns the events
    /// of alerts whose rules are gone. The series store keeps what the
    /// new rules look back over.
    pub fn reload(&mut self, groups: Vec<RuleGroup>, now: Millis) -> Vec<AlertEvent> {
        let retention = retention_for(&groups);
        let rules = groups.iter().map(|g| g.rules.len()).sum::<usize>();
        let ended = self.engine.replace_groups(groups, now);
        self.series.set_retention(retention);
        if let Some(s) = &mut self.sight {
            let engine = &self.engine;
            s.sight.keep_rules(|group, rule| {
                engine
                    .groups()
                    .any(|g| g.name == group && g.rules.iter().any(|r| r.name() == rule))
            });
        }
        tracing::info!(
            groups = self.engine.groups().count(),
            rules,
            ended = ended.len(),
            "rules reloaded"
        );
        ended
    }

    /// Runs until shutdown. Alert events go out through `alerts`; when that
    /// queue is full the watcher waits, so evaluation slows down rather
    /// than dropping a transition. Runbook queries are answered between
    /// scrapes and evaluations, at the clock's now, so they see the same
    /// store the rules do.
    pub async fn run(
        mut self,
        mut scrapes: mpsc::Receiver<ScrapeBatch>,
        mut queries: QueryRequests,
        alerts: mpsc::Sender<AlertEvent>,
        clock: Clock,
        shutdown: CancellationToken,
    ) {
        let mut scraping = true;
        let mut querying = true;
        let mut pushed_rx = self.pushed.as_mut().and_then(|p| p.rx.take());
        let mut reloads = self.reloads.take();
        loop {
            let due = self.engine.next_due();
            let expiry = self.pushed.as_ref().and_then(|p| p.alerts.next_expiry());
            let deadman = self.sight.as_ref().and_then(|s| s.sight.next_check());
            // Reading and applying pushed alerts happen here, in the same
            // task as rules, so their events interleave in one order.
            let mut events = Vec::new();
            let mut evaluated = false;
            tokio::select! {
                batch = async { pushed_rx.as_mut().expect("guarded").recv().await }, if pushed_rx.is_some() => match (batch, &mut self.pushed) {
                    (Some(b), Some(p)) => {
                        let now = clock.now();
                        crate::metrics::get().pushed_last_received.with(&[]).set(now as f64 / 1000.0);
                        if let Some(s) = &mut self.sight {
                            let c = s.sight.heard(now);
                            s.note(c);
                        }
                        events = p.alerts.apply(b, now);
                        // Take whatever else is waiting in the same pass: a
                        // burst costs one save, not one per request.
                        while events.len() < 4096
                            && let Some(b) = pushed_rx.as_mut().and_then(|rx| rx.try_recv().ok())
                        {
                            events.extend(p.alerts.apply(b, now));
                        }
                    }
                    _ => pushed_rx = None,
                },
                _ = clock.sleep_until(expiry.unwrap_or(Millis::MAX)), if expiry.is_some() => {
                    if let Some(p) = &mut self.pushed {
                        events = p.alerts.expire(clock.now());
                    }
                }
                _ = clock.sleep_until(deadman.unwrap_or(Millis::MAX)), if deadman.is_some() => {
                    if let Some(s) = &mut self.sight {
                        let c = s.sight.tick(clock.now());
                        s.note(c);
                    }
                }
                _ = shutdown.cancelled() => return,
                groups = async { reloads.as_mut().expect("guarded").recv().await }, if reloads.is_some() => match groups {
                    Some(g) => events = self.reload(g, clock.now()),
                    None => reloads = None,
                },
                // No scrape targets (a remote source, or rules alone)
                // closes the queue at once; evaluation goes on.
                batch = scrapes.recv(), if scraping => match batch {
                    Some(b) => self.ingest(b),
                    None => scraping = false,
                },
                req = queries.0.recv(), if querying => match req {
                    Some(r) => self.answer(r, clock.now()),
                    None => querying = false,
                },
                _ = clock.sleep_until(due) => {
                    let now = clock.now();
                    let started = std::time::Instant::now();
                    let outcome = tokio::select! {
                        o = self.evaluate(now) => o,
                        _ = shutdown.cancelled() => return,
                    };
                    crate::metrics::get()
                        .evaluation_seconds
                        .with(&[])
                        .observe(started.elapsed().as_secs_f64());
                    tracing::debug!(groups = ?outcome.evaluated, events = outcome.events.len(), errors = outcome.errors.len(), missed = outcome.missed, series = self.series.series_count(), active = self.engine.active_alerts().len(), "rules evaluated");
                    for e in &outcome.errors {
                        tracing::warn!(group = %e.group, rule = %e.rule, error = %e.message, "rule evaluation failed");
                    }
                    self.series.maybe_gc(now);
                    events = outcome.events;
                    evaluated = true;
                }
            }
            // After every evaluation (a state with alerts is saved even
            // when nothing changed, so `for` timers survive a restart), and
            // whenever pushed alerts changed something.
            if evaluated && let Some(tx) = &self.pending {
                let now = self.engine.pending();
                tx.send_if_modified(|shown| {
                    let changed = **shown != now;
                    if changed {
                        *shown = Arc::new(now);
                    }
                    changed
                });
            }
            if evaluated || !events.is_empty() {
                self.count_alerts();
                self.save_state(clock.now(), !events.is_empty()).await;
            }
            let changes = self
                .sight
                .as_mut()
                .map(|s| (std::mem::take(&mut s.pending), s.changes.clone()));
            if let Some((changes, tx)) = changes {
                for c in changes {
                    tokio::select! {
                        // The control loop gone (shutdown) is no reason to stop watching.
                        _ = tx.send(c) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
            let m = crate::metrics::get();
            for ev in events {
                let kind = match ev.kind {
                    crate::rules::AlertEventKind::Pending => "pending",
                    crate::rules::AlertEventKind::Firing => "firing",
                    crate::rules::AlertEventKind::Resolved => "resolved",
                };
                m.alert_transitions.with(&[kind]).inc();
                tokio::select! {
                    r = alerts.send(ev) => if r.is_err() { return },
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;
    use crate::promql::{Value, query};
    use crate::rules::RuleEngine;

    fn watcher() -> Watcher {
        Watcher {
            engine: RuleEngine::new(Vec::new(), Labels::new(), 0),
            series: SeriesStore::new(3_600_000),
            state: None,
            remote: None,
            pushed: None,
            reloads: None,
            sight: None,
            pending: None,
        }
    }

    fn batch(at: i64, result: Result<&str, &str>) -> ScrapeBatch {
        ScrapeBatch {
            target: "sim".into(),
            at,
            target_labels: Labels::new()
                .with("job", "sim")
                .with("instance", "127.0.0.1:9100"),
            result: result
                .map(|body| {
                    crate::source::Scraped::parse(
                        body.to_owned(),
                        crate::source::exposition::Format::Prometheus004,
                    )
                    .unwrap()
                })
                .map_err(str::to_owned),
            duration_ms: 12,
        }
    }

    fn scalar_of(w: &Watcher, q: &str, at: i64) -> Option<f64> {
        match query(q, &w.series, at).unwrap() {
            Value::Vector(v) => v.first().map(|s| s.value),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn alert_state_is_saved_and_restored_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("s.db").display()))
            .await
            .unwrap();
        let rules = "groups:\n  - name: g\n    interval: 15s\n    rules:\n      - alert: Up\n        expr: x > 0\n        for: 30s\n";
        let groups = || {
            crate::rules::parse_rule_file("r.yml", rules)
                .unwrap()
                .groups
        };
        let x = || Labels::new().with("__name__", "x");

        let mut w = Watcher {
            engine: RuleEngine::new(groups(), Labels::new(), 0),
            series: SeriesStore::new(600_000),
            state: Some(store.clone()),
            remote: None,
            pushed: None,
            reloads: None,
            sight: None,
            pending: None,
        };
        let mut firing = 0;
        for t in (0..=60_000).step_by(15_000) {
            w.series.append(x(), t, 1.0).unwrap();
            let o = w.engine.eval_due(&mut w.series, t);
            firing += o
                .events
                .iter()
                .filter(|e| e.kind == crate::rules::AlertEventKind::Firing)
                .count();
            w.save_state(t, !o.events.is_empty()).await;
        }
        assert_eq!(firing, 1);

        // A new process: same store, fresh engine.
        let mut w2 = Watcher {
            engine: RuleEngine::new(groups(), Labels::new(), 75_000),
            series: SeriesStore::new(600_000),
            state: Some(store.clone()),
            remote: None,
            pushed: None,
            reloads: None,
            sight: None,
            pending: None,
        };
        w2.restore(&store, 75_000).await;
        assert_eq!(w2.engine.active_alerts().len(), 1);
        w2.series.append(x(), 75_000, 1.0).unwrap();
        let o = w2.engine.eval_due(&mut w2.series, 75_000);
        assert!(
            o.events.is_empty(),
            "still firing, no new event: {:?}",
            o.events
        );
        assert_eq!(
            w2.engine.active_alerts()[0].state,
            crate::rules::AlertState::Firing
        );
    }

    #[tokio::test]
    async fn unreadable_saved_state_starts_afresh() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.save_rule_state(1, "not json").await.unwrap();
        let mut w = watcher();
        w.restore(&store, 2).await;
        assert!(w.engine.active_alerts().is_empty());
    }

    // Regression: with no scrape targets the closed queue stopped the
    // watcher, so a remote-source bot never evaluated a rule.
    #[tokio::test(start_paused = true)]
    async fn evaluation_goes_on_without_scrape_targets() {
        let rules = "groups:\n  - name: g\n    interval: 15s\n    rules:\n      - alert: Always\n        expr: vector(1) > 0\n";
        let groups = crate::rules::parse_rule_file("r.yml", rules)
            .unwrap()
            .groups;
        let w = Watcher {
            engine: RuleEngine::new(groups, Labels::new(), 0),
            series: SeriesStore::new(600_000),
            state: None,
            remote: None,
            pushed: None,
            reloads: None,
            sight: None,
            pending: None,
        };
        let (scrape_tx, scrape_rx) = tokio::sync::mpsc::channel(1);
        drop(scrape_tx);
        let (alert_tx, mut alert_rx) = tokio::sync::mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let clock = Clock::scaled(0, 1.0);
        let (_queries, query_rx) = queries(None, clock.clone());
        let task = tokio::spawn(w.run(scrape_rx, query_rx, alert_tx, clock, shutdown.clone()));
        let ev = tokio::time::timeout(std::time::Duration::from_secs(60), alert_rx.recv()).await;
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(
            ev.expect("an alert within a minute")
                .expect("an event")
                .alert
                .rule,
            "Always"
        );
    }

    fn incoming(
        name: &str,
        lifecycle: crate::source::alertmanager::Lifecycle,
    ) -> Vec<crate::source::alertmanager::Incoming> {
        vec![crate::source::alertmanager::Incoming {
            labels: Labels::new().with("alertname", name),
            annotations: Default::default(),
            starts_at: None,
            lifecycle,
            via: "api".into(),
            generator_url: None,
        }]
    }

    /// Pushed alerts come out as transitions, expire on the watcher's
    /// clock, and survive a restart through the saved state.
    #[tokio::test]
    async fn pushed_alerts_fire_expire_and_are_saved() {
        use crate::rules::AlertEventKind::{Firing, Resolved};
        use crate::source::alertmanager::Lifecycle;
        let m = crate::metrics::get();
        let fired = m.alert_transitions.with(&["firing"]).get();
        let resolved = m.alert_transitions.with(&["resolved"]).get();
        let store = Store::open("sqlite::memory:").await.unwrap();
        let (push, pushed) = Pushed::new(60_000);
        let mut w = watcher();
        w.state = Some(store.clone());
        w.pushed = Some(pushed);
        let (_scrape_tx, scrape_rx) = tokio::sync::mpsc::channel(1);
        let (alert_tx, mut alert_rx) = tokio::sync::mpsc::channel(8);
        let shutdown = CancellationToken::new();
        // A minute in a tenth of a second: the store needs real time.
        let clock = Clock::scaled(0, 600.0);
        let (_queries, query_rx) = queries(None, clock.clone());
        let task = tokio::spawn(w.run(scrape_rx, query_rx, alert_tx, clock, shutdown.clone()));
        push.send(incoming("Short", Lifecycle::Until(None)))
            .await
            .unwrap();
        push.send(incoming("Told", Lifecycle::Told { resolved: false }))
            .await
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let ev = alert_rx.recv().await.unwrap();
            seen.push((ev.kind, ev.alert.rule, ev.at >= 60_000));
        }
        assert_eq!(
            seen,
            vec![
                (Firing, "Short".to_owned(), false),
                (Firing, "Told".to_owned(), false),
                (Resolved, "Short".to_owned(), true),
            ]
        );
        shutdown.cancel();
        task.await.unwrap();
        assert!(m.alert_transitions.with(&["firing"]).get() >= fired + 2);
        assert!(m.alert_transitions.with(&["resolved"]).get() > resolved);

        let (_push, pushed) = Pushed::new(60_000);
        let mut w = watcher();
        w.pushed = Some(pushed);
        let firing = w.restore(&store, 100_000).await;
        let names: Vec<&str> = firing.iter().map(|a| a.rule.as_str()).collect();
        assert_eq!(names, ["Told"], "the saved state has what still fires");
    }

    /// A watcher task over a hand-filled store, on a paused scaled clock
    /// that starts at 60s.
    fn serve(series: SeriesStore) -> (Queries, CancellationToken, tokio::task::JoinHandle<()>) {
        let w = Watcher {
            engine: RuleEngine::new(Vec::new(), Labels::new(), 0),
            series,
            state: None,
            remote: None,
            pushed: None,
            reloads: None,
            sight: None,
            pending: None,
        };
        let (scrape_tx, scrape_rx) = tokio::sync::mpsc::channel(1);
        drop(scrape_tx);
        let (alert_tx, _alert_rx) = tokio::sync::mpsc::channel(1);
        let clock = Clock::scaled(60_000, 1.0);
        let (q, rx) = queries(None, clock.clone());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(w.run(scrape_rx, rx, alert_tx, clock, shutdown.clone()));
        (q, shutdown, task)
    }

    #[tokio::test(start_paused = true)]
    async fn runbook_queries_are_answered_by_the_watcher_task_at_its_now() {
        let mut s = SeriesStore::new(600_000);
        let m = |room: &str| {
            Labels::new()
                .with("__name__", "listeners")
                .with("room", room)
        };
        s.append(m("a"), 30_000, 2.0).unwrap();
        s.append(m("b"), 30_000, 3.0).unwrap();
        // Newer than the clock's now: a query at 60s must not see it.
        s.append(m("a"), 90_000, 100.0).unwrap();
        let (q, shutdown, task) = serve(s);

        assert_eq!(
            q.query("sum(listeners)").await.unwrap(),
            Value::Vector(vec![crate::promql::Sample {
                labels: Labels::new(),
                value: 5.0
            }])
        );
        assert_eq!(
            q.query("scalar(listeners{room=\"b\"})").await.unwrap(),
            Value::Scalar(3.0)
        );
        assert_eq!(
            q.query("absent_metric").await.unwrap(),
            Value::Vector(vec![])
        );

        // Handles are clones of one queue; many at once are all answered.
        let many = (0..100).map(|_| {
            let q = q.clone();
            tokio::spawn(async move { q.query("count(listeners)").await })
        });
        for h in many {
            assert!(matches!(h.await.unwrap(), Ok(Value::Vector(v)) if v[0].value == 2.0));
        }

        let e = q.query("sum(listeners").await.unwrap_err();
        assert!(matches!(e, QueryError::BadExpr(_)), "{e:?}");
        // A runbook query rendered from a hostile alert label: refused,
        // and the task goes on answering.
        let deep = format!(
            "listeners{{room=\"\"}} + {}1{}",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        let e = q.query(&deep).await.unwrap_err();
        assert!(
            matches!(&e, QueryError::BadExpr(m) if m.contains("nests too deep")),
            "{e:?}"
        );
        assert!(q.query("count(listeners)").await.is_ok());
        let e = q.query("listeners + on() listeners").await.unwrap_err();
        assert!(matches!(e, QueryError::Eval(_)), "{e:?}");

        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(q.query("listeners").await.unwrap_err(), QueryError::Closed);
        assert!(!QueryError::Closed.retryable());
    }

    #[tokio::test]
    async fn with_a_remote_source_queries_skip_the_task_and_an_outage_is_retryable() {
        let api = RemoteApi {
            base: reqwest::Url::parse("http://127.0.0.1:1/").unwrap(),
            http: crate::net::client().unwrap(),
            timeout: std::time::Duration::from_secs(2),
            retries: 0,
        };
        // No task serves the queue: an answer can only come from the API.
        let (q, rx) = queries(Some(api), Clock::system());
        drop(rx);
        let e = q.query("up").await.unwrap_err();
        assert!(matches!(e, QueryError::Unavailable(_)), "{e:?}");
        assert!(e.retryable());
        // Bounded before it is sent: the remote Prometheus is not asked.
        let deep = format!("{}up{}", "(".repeat(5000), ")".repeat(5000));
        let e = q.query(&deep).await.unwrap_err();
        assert!(matches!(e, QueryError::BadExpr(_)), "{e:?}");
        assert!(!e.retryable());
    }

    #[test]
    fn retention_is_what_the_rules_read_plus_an_interval() {
        let text = "groups:\n  - name: g\n    interval: 15s\n    rules:\n      - alert: A\n        expr: rate(x[10m]) > 0\n      - record: r\n        expr: sum(y)\n";
        let f = crate::rules::parse_rule_file("r.yml", text).unwrap();
        assert_eq!(retention_for(&f.groups), 600_000 + 15_000);
        assert_eq!(retention_for(&[]), LOOKBACK_MS);
        let shipped =
            crate::rules::parse_rule_file("a.yml", crate::embedded::ALERT_FILES[0].1).unwrap();
        assert_eq!(retention_for(&shipped.groups), LOOKBACK_MS + 15_000);
    }

    #[test]
    fn a_failed_scrape_sets_up_to_zero_and_ends_the_targets_series() {
        let mut w = watcher();
        w.ingest(batch(1_000, Ok("live_room_listeners{room=\"main\"} 5\n")));
        assert_eq!(scalar_of(&w, "up", 1_000), Some(1.0));
        assert_eq!(scalar_of(&w, "live_room_listeners", 1_000), Some(5.0));
        assert_eq!(scalar_of(&w, "scrape_duration_seconds", 1_000), Some(0.012));
        assert_eq!(scalar_of(&w, "scrape_samples_scraped", 1_000), Some(1.0));
        assert_eq!(scalar_of(&w, "scrape_series_added", 1_000), Some(1.0));

        // A malformed exposition: the scrape fails, the bot carries on.
        w.ingest(batch(16_000, Err("line 3: not a valid sample line")));
        assert_eq!(scalar_of(&w, "up", 16_000), Some(0.0));
        assert_eq!(scalar_of(&w, "scrape_samples_scraped", 16_000), Some(0.0));
        assert_eq!(
            scalar_of(&w, "live_room_listeners", 16_000),
            None,
            "stale after a failed scrape, as in Prometheus"
        );

        // The next good scrape brings it back, as the same series.
        w.ingest(batch(31_000, Ok("live_room_listeners{room=\"main\"} 7\n")));
        assert_eq!(scalar_of(&w, "up", 31_000), Some(1.0));
        assert_eq!(scalar_of(&w, "live_room_listeners", 31_000), Some(7.0));
        assert_eq!(scalar_of(&w, "scrape_series_added", 31_000), Some(0.0));
    }

    #[test]
    fn scraped_series_get_target_labels_once_and_keep_them() {
        let mut w = watcher();
        let body = "m{job=\"inner\",k=\"a\"} 1\nm{k=\"b\"} 2\n";
        w.ingest(batch(1_000, Ok(body)));
        w.ingest(batch(16_000, Ok(body)));
        let q = |q: &str| match query(q, &w.series, 16_000).unwrap() {
            Value::Vector(v) => v
                .iter()
                .map(|s| (s.labels.to_string(), s.value))
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            q("m"),
            vec![
                (
                    r#"m{exported_job="inner", instance="127.0.0.1:9100", job="sim", k="a"}"#
                        .to_owned(),
                    1.0
                ),
                (
                    r#"m{instance="127.0.0.1:9100", job="sim", k="b"}"#.to_owned(),
                    2.0
                ),
            ]
        );
        // Two samples each: the cache found the same series the second time.
        assert_eq!(w.series.series_count(), 2 + 4);
        assert_eq!(w.series.sample_count(), 4 + 8);
    }

    /// Issue 22, item 2: a target that stops answering, and a rule that
    /// cannot be evaluated, are each said once when lost (a single failure
    /// is not), and once when back; the board `/-/ready` reads follows.
    #[test]
    fn a_failing_target_or_rule_is_said_once_and_its_recovery_too() {
        let (tx, _rx) = mpsc::channel(16);
        let board = Board::new();
        let rules = "groups:\n  - name: g\n    interval: 15s\n    rules:\n      - alert: Joined\n        expr: a * on(job) b\n";
        let groups = crate::rules::parse_rule_file("r.yml", rules)
            .unwrap()
            .groups;
        let mut w = watcher();
        w.engine = RuleEngine::new(groups, Labels::new(), 0);
        w.sight = Some(Sighting::new(board.clone(), tx, None, 0));
        let taken = |w: &mut Watcher| std::mem::take(&mut w.sight.as_mut().unwrap().pending);
        let sim = Sense::Scrape {
            target: "sim".into(),
        };
        let rule = Sense::Rule {
            group: "g".into(),
            rule: "Joined".into(),
        };

        w.ingest(batch(0, Err("connection refused")));
        assert!(taken(&mut w).is_empty(), "one failure is not blindness");
        w.ingest(batch(1_000, Err("connection refused")));
        let lost = taken(&mut w);
        assert!(
            matches!(&lost[..], [Change::Lost { sense, lost }] if *sense == sim && lost.since == 0),
            "{lost:?}"
        );
        assert_eq!(board.blind().len(), 1);
        w.ingest(batch(2_000, Err("connection refused")));
        assert!(taken(&mut w).is_empty(), "said once");
        let m = crate::metrics::get();
        assert_eq!(m.source_up.with(&["sim"]).get(), 0.0);

        // Back, with two `a` series for one `b`: the rule cannot match them.
        let dup = "a{i=\"1\"} 1\na{i=\"2\"} 1\nb 1\n";
        w.ingest(batch(3_000, Ok(dup)));
        let back = taken(&mut w);
        assert!(
            matches!(&back[..], [Change::Back { sense, since: 0, at: 3_000 }] if *sense == sim),
            "{back:?}"
        );
        assert!(board.blind().is_empty());
        let failures = m.rule_evaluation_failures.with(&["g"]).get();
        for t in [15_000, 30_000] {
            let o = w.engine.eval_due(&mut w.series, t);
            assert_eq!(o.errors.len(), 1, "{o:?}");
            w.note_rules(&o, t);
        }
        assert!(m.rule_evaluation_failures.with(&["g"]).get() >= failures + 2);
        let lost = taken(&mut w);
        assert!(
            matches!(&lost[..], [Change::Lost { sense, .. }] if *sense == rule),
            "{lost:?}"
        );
        assert!(
            board.blind()[0].contains("rule `Joined`"),
            "{:?}",
            board.blind()
        );

        // One `a` again: the rule evaluates, and that is said.
        w.ingest(batch(31_000, Ok("a{i=\"1\"} 1\nb 1\n")));
        let o = w.engine.eval_due(&mut w.series, 45_000);
        assert!(o.errors.is_empty(), "{o:?}");
        w.note_rules(&o, 45_000);
        let back = taken(&mut w);
        assert!(
            matches!(&back[..], [Change::Back { sense, .. }] if *sense == rule),
            "{back:?}"
        );
        assert!(board.blind().is_empty());
    }

    /// A remote source that does not answer is one loss, said once, not a
    /// loss per rule that could not be evaluated meanwhile.
    #[tokio::test]
    async fn a_remote_source_that_does_not_answer_is_one_loss_not_one_per_rule() {
        let (tx, _rx) = mpsc::channel(16);
        let rules = "groups:\n  - name: g\n    interval: 15s\n    rules:\n      - alert: A\n        expr: up == 0\n      - alert: B\n        expr: up > 5\n";
        let groups = crate::rules::parse_rule_file("r.yml", rules)
            .unwrap()
            .groups;
        let mut w = watcher();
        w.engine = RuleEngine::new(groups, Labels::new(), 0);
        w.remote = Some(RemoteApi {
            base: reqwest::Url::parse("http://127.0.0.1:1/").unwrap(),
            http: crate::net::client().unwrap(),
            timeout: std::time::Duration::from_secs(2),
            retries: 0,
        });
        w.sight = Some(Sighting::new(Board::new(), tx, None, 0));
        for t in [0, 15_000, 30_000] {
            let o = w.evaluate(t).await;
            assert_eq!(o.errors.len(), 2, "{o:?}");
        }
        let said = std::mem::take(&mut w.sight.as_mut().unwrap().pending);
        assert!(
            matches!(&said[..], [Change::Lost { sense: Sense::Remote, lost }] if lost.since == 0),
            "{said:?}"
        );
        assert_eq!(crate::metrics::get().source_up.with(&["remote"]).get(), 0.0);
    }
}
