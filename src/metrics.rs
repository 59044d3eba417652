//! The bot's own metrics, served at `/metrics` in the Prometheus text
//! format (0.0.4): alerts by state, runs and steps by outcome and latency,
//! chat delivery, scrapes, rule evaluation, pushed alerts and the HTTP API.
//!
//! One registry per process ([`get`]), as a Prometheus client library
//! keeps: the tasks that count are many and deep in the flow, and threading
//! a handle through each would change every constructor for no behaviour.
//! Counting is a few atomic operations; a family's lock is taken only to
//! find a label set's cell.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

/// A monotonically increasing count.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Observations in cumulative buckets, with their sum and count.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        let mut cur = self.sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match self
                .sum
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Seconds, from a millisecond to a minute: steps, scrapes, evaluations,
/// HTTP requests and chat calls all land inside.
pub const SECONDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// One metric name with a cell per label set.
pub struct Family<T> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    cells: Mutex<BTreeMap<Vec<String>, Arc<T>>>,
    make: fn() -> T,
}

impl<T> Family<T> {
    fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        make: fn() -> T,
    ) -> Family<T> {
        Family {
            name,
            help,
            labels,
            cells: Mutex::new(BTreeMap::new()),
            make,
        }
    }

    /// The cell for these label values, given in the family's label order.
    pub fn with(&self, values: &[&str]) -> Arc<T> {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells
            .entry(key)
            .or_insert_with(|| Arc::new((self.make)()))
            .clone()
    }

    fn snapshot(&self) -> Vec<(Vec<String>, Arc<T>)> {
        let cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn label_text(&self, values: &[String], extra: Option<(&str, &str)>) -> String {
        let mut parts: Vec<String> = self
            .labels
            .iter()
            .zip(values)
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        if let Some((k, v)) = extra {
            parts.push(format!("{k}=\"{v}\""));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", parts.join(","))
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Everything the bot counts.
pub struct Metrics {
    pub alerts: Family<Gauge>,
    pub alert_transitions: Family<Counter>,
    pub pushed_alerts: Family<Counter>,
    pub runs: Family<Counter>,
    pub rollbacks_held: Family<Counter>,
    pub run_retries: Family<Counter>,
    pub late_mitigations: Family<Counter>,
    pub cooldown_overrides: Family<Counter>,
    pub audience_query_errors: Family<Counter>,
    pub steps: Family<Counter>,
    pub step_seconds: Family<Histogram>,
    pub outbox_depth: Family<Gauge>,
    pub chat_sent: Family<Counter>,
    pub chat_errors: Family<Counter>,
    pub scrape_seconds: Family<Histogram>,
    pub evaluation_seconds: Family<Histogram>,
    pub commands: Family<Counter>,
    pub slack_refused: Family<Counter>,
    pub console_signins: Family<Counter>,
    pub console_actions: Family<Counter>,
    pub http_requests: Family<Counter>,
    pub http_seconds: Family<Histogram>,
    pub leader: Family<Gauge>,
    pub lease_epoch: Family<Gauge>,
    pub failovers: Family<Counter>,
    pub lease_lost: Family<Counter>,
    pub store_up: Family<Gauge>,
    pub build_info: Family<Gauge>,
    pub outbox_oldest_age: Family<Gauge>,
    pub source_up: Family<Gauge>,
    pub rule_evaluations: Family<Counter>,
    pub rule_evaluation_failures: Family<Counter>,
    pub rule_group_last_evaluation: Family<Gauge>,
    pub pushed_last_received: Family<Gauge>,
    pub blind: Family<Gauge>,
    pub chat_up: Family<Gauge>,
    pub reload_successful: Family<Gauge>,
    pub reload_success_at: Family<Gauge>,
}

fn seconds() -> Histogram {
    Histogram::new(SECONDS)
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    alerts: Family::new(
        "firebreak_alerts",
        "Alerts by state: pending and firing from firebreak's rules, firing ones pushed by Alertmanager or Prometheus.",
        &["state"],
        Gauge::default,
    ),
    alert_transitions: Family::new(
        "firebreak_alert_transitions_total",
        "Alert state changes sent to dispatch, by kind (firing, resolved).",
        &["kind"],
        Counter::default,
    ),
    pushed_alerts: Family::new(
        "firebreak_pushed_alerts_received_total",
        "Alerts accepted from the HTTP API, by endpoint (webhook, api_v2).",
        &["endpoint"],
        Counter::default,
    ),
    runs: Family::new(
        "firebreak_runs_total",
        "Runbook runs that ended, by runbook and outcome.",
        &["runbook", "outcome"],
        Counter::default,
    ),
    rollbacks_held: Family::new(
        "firebreak_rollbacks_held_total",
        "Rollbacks not done because their guard did not hold (or could not be judged), by runbook: each one left for a person.",
        &["runbook"],
        Counter::default,
    ),
    run_retries: Family::new(
        "firebreak_run_retries_total",
        "Runs that failed on a passing fault before changing anything, by runbook and what followed: scheduled (tried again later), started (the try again began), dropped (the alert had stopped or policy stood aside) or spent (no tries left; a person is called).",
        &["runbook", "outcome"],
        Counter::default,
    ),
    late_mitigations: Family::new(
        "firebreak_late_mitigations_total",
        "Runs started although they cannot take effect before their alert's predicted breach (no runbook for it could), by runbook: each one paged people at once.",
        &["runbook"],
        Counter::default,
    ),
    cooldown_overrides: Family::new(
        "firebreak_cooldown_overrides_total",
        "Runs started within their cooldown because their alert predicted its breach before the cooldown would end (dispatch rule 7), by runbook.",
        &["runbook"],
        Counter::default,
    ),
    audience_query_errors: Family::new(
        "firebreak_audience_query_errors_total",
        "Audience queries (incidents.audience) that failed, by figure: listening, at_risk, without_us. The first failure and the recovery are said in chat.",
        &["figure"],
        Counter::default,
    ),
    steps: Family::new(
        "firebreak_steps_total",
        "Runbook steps that ended, by action and outcome.",
        &["action", "outcome"],
        Counter::default,
    ),
    step_seconds: Family::new(
        "firebreak_step_duration_seconds",
        "How long runbook steps took, by action.",
        &["action"],
        seconds,
    ),
    outbox_depth: Family::new(
        "firebreak_outbox_depth",
        "Chat messages waiting in the outbox.",
        &[],
        Gauge::default,
    ),
    chat_sent: Family::new(
        "firebreak_chat_messages_sent_total",
        "Chat messages delivered (posts, edits, uploads).",
        &[],
        Counter::default,
    ),
    chat_errors: Family::new(
        "firebreak_chat_send_errors_total",
        "Chat messages not delivered: a failed call to be retried (retry), the platform refusing the bot itself (refused: kept and tried again slowly), one the platform refused for good (rejected), or an outbox row that could not be read (unreadable); the last two are set aside.",
        &["kind"],
        Counter::default,
    ),
    scrape_seconds: Family::new(
        "firebreak_scrape_duration_seconds",
        "How long scrapes took, by target.",
        &["target"],
        seconds,
    ),
    evaluation_seconds: Family::new(
        "firebreak_rule_evaluation_duration_seconds",
        "How long one pass over the due rule groups took.",
        &[],
        seconds,
    ),
    commands: Family::new(
        "firebreak_commands_total",
        "Chat and console commands, by command and outcome (ok, refused, error).",
        &["command", "outcome"],
        Counter::default,
    ),
    slack_refused: Family::new(
        "firebreak_slack_inbound_refused_total",
        "What Slack's inbound side refused, by reason: a request seen before (replay), or a response_url not at an allowed Slack host (response_url).",
        &["reason"],
        Counter::default,
    ),
    console_signins: Family::new(
        "firebreak_console_signins_total",
        "Sign-ins to the web console, by outcome: ok, refused (a token never issued or revoked), no_role (a token whose person has no role), refused_header (behind a proxy: its sign-in header from an address that is not the proxy's, or empty, repeated or too long).",
        &["outcome"],
        Counter::default,
    ),
    console_actions: Family::new(
        "firebreak_console_actions_total",
        "Commands sent from the web console: answered (by the command, which may itself refuse), or refused before it (not signed in, no CSRF token, another origin).",
        &["outcome"],
        Counter::default,
    ),
    http_requests: Family::new(
        "firebreak_http_requests_total",
        "HTTP API requests, by route and status code.",
        &["route", "code"],
        Counter::default,
    ),
    http_seconds: Family::new(
        "firebreak_http_request_duration_seconds",
        "How long HTTP API requests took, by route.",
        &["route"],
        seconds,
    ),
    leader: Family::new(
        "firebreak_leader",
        "1 while this replica holds the leader lease and acts, else 0 (a SQLite store has no lease: its one process is 1).",
        &[],
        Gauge::default,
    ),
    lease_epoch: Family::new(
        "firebreak_lease_epoch",
        "The epoch of the leader lease as this replica last saw it; it goes up by one at each takeover.",
        &[],
        Gauge::default,
    ),
    failovers: Family::new(
        "firebreak_failovers_total",
        "Times this replica took the leader lease after an earlier holder (another replica, or this one before a restart or a lost lease).",
        &[],
        Counter::default,
    ),
    build_info: Family::new(
        "firebreak_build_info",
        "Always 1; the version of firebreak running, as a label.",
        &["version"],
        Gauge::default,
    ),
    outbox_oldest_age: Family::new(
        "firebreak_outbox_oldest_age_seconds",
        "How long the oldest chat message still waiting to be delivered has waited (0 when none waits); read from the store at each scrape. Rising means chat is not getting through.",
        &[],
        Gauge::default,
    ),
    source_up: Family::new(
        "firebreak_source_up",
        "1 if the metrics source answered its latest scrape or query, else 0, by source (a scrape target's name, or `remote`).",
        &["source"],
        Gauge::default,
    ),
    rule_evaluations: Family::new(
        "firebreak_rule_evaluations_total",
        "Rule evaluations, by rule group.",
        &["rule_group"],
        Counter::default,
    ),
    rule_evaluation_failures: Family::new(
        "firebreak_rule_evaluation_failures_total",
        "Rule evaluations that failed (the expression could not be evaluated, or the source did not answer), by rule group.",
        &["rule_group"],
        Counter::default,
    ),
    rule_group_last_evaluation: Family::new(
        "firebreak_rule_group_last_evaluation_timestamp_seconds",
        "When each rule group was last evaluated, in seconds since the epoch.",
        &["rule_group"],
        Gauge::default,
    ),
    pushed_last_received: Family::new(
        "firebreak_pushed_alerts_last_received_timestamp_seconds",
        "When alerts were last pushed to this process (Alertmanager's webhook or Prometheus's alerts API), in seconds since the epoch; 0 before the first.",
        &[],
        Gauge::default,
    ),
    blind: Family::new(
        "firebreak_blind",
        "What firebreak cannot see now, by kind: source (a scrape target or the remote API failing), rule (a rule failing to evaluate), pushes (none within server.deadman), chat (the platform refuses the bot). Each loss and recovery is said in chat once.",
        &["kind"],
        Gauge::default,
    ),
    chat_up: Family::new(
        "firebreak_chat_up",
        "1 while the chat platform takes the bot's messages, 0 while it refuses the bot's token itself (revoked, expired, missing a scope); messages wait in the outbox meanwhile.",
        &[],
        Gauge::default,
    ),
    reload_successful: Family::new(
        "firebreak_config_last_reload_successful",
        "1 if the latest reload of rules, runbooks and checklists was taken, 0 if it was refused (the previous version runs on).",
        &[],
        Gauge::default,
    ),
    reload_success_at: Family::new(
        "firebreak_config_last_reload_success_timestamp_seconds",
        "When rules, runbooks and checklists were last loaded or reloaded successfully, in seconds since the epoch.",
        &[],
        Gauge::default,
    ),
    store_up: Family::new(
        "firebreak_store_up",
        "On a replica: 1 while the store answers its lease reads and renewals, 0 while it cannot reach it (then it does not act).",
        &[],
        Gauge::default,
    ),
    lease_lost: Family::new(
        "firebreak_lease_lost_total",
        "Times this replica stopped leading without choosing to, by reason: renew_failed (it could not renew in time), taken (another replica has the lease), fenced (the store refused a write of its epoch).",
        &["reason"],
        Counter::default,
    ),
});

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// Sets `firebreak_blind` from what the board says is lost.
pub fn count_blind(board: &crate::sight::Board) {
    for (kind, n) in board.counts() {
        get().blind.with(&[kind]).set(n as f64);
    }
}

impl Metrics {
    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.build_info.with(&[env!("CARGO_PKG_VERSION")]).set(1.0);
        for f in [
            &self.build_info,
            &self.outbox_oldest_age,
            &self.alerts,
            &self.outbox_depth,
            &self.leader,
            &self.lease_epoch,
            &self.store_up,
            &self.source_up,
            &self.rule_group_last_evaluation,
            &self.pushed_last_received,
            &self.blind,
            &self.chat_up,
            &self.reload_successful,
            &self.reload_success_at,
        ] {
            gauge_family(&mut out, f);
        }
        for f in [
            &self.alert_transitions,
            &self.pushed_alerts,
            &self.runs,
            &self.rollbacks_held,
            &self.run_retries,
            &self.late_mitigations,
            &self.cooldown_overrides,
            &self.audience_query_errors,
            &self.steps,
            &self.chat_sent,
            &self.chat_errors,
            &self.commands,
            &self.slack_refused,
            &self.console_signins,
            &self.console_actions,
            &self.http_requests,
            &self.failovers,
            &self.lease_lost,
            &self.rule_evaluations,
            &self.rule_evaluation_failures,
        ] {
            counter_family(&mut out, f);
        }
        for f in [
            &self.step_seconds,
            &self.scrape_seconds,
            &self.evaluation_seconds,
            &self.http_seconds,
        ] {
            histogram_family(&mut out, f);
        }
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge_family(out: &mut String, f: &Family<Gauge>) {
    header(out, f.name, f.help, "gauge");
    for (k, g) in f.snapshot() {
        let _ = writeln!(
            out,
            "{}{} {}",
            f.name,
            f.label_text(&k, None),
            number(g.get())
        );
    }
}

fn counter_family(out: &mut String, f: &Family<Counter>) {
    header(out, f.name, f.help, "counter");
    for (k, c) in f.snapshot() {
        let _ = writeln!(out, "{}{} {}", f.name, f.label_text(&k, None), c.get());
    }
}

fn histogram_family(out: &mut String, f: &Family<Histogram>) {
    header(out, f.name, f.help, "histogram");
    for (k, h) in f.snapshot() {
        let mut cumulative = 0;
        for (b, n) in h.bounds.iter().zip(&h.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let le = number(*b);
            let _ = writeln!(
                out,
                "{}_bucket{} {cumulative}",
                f.name,
                f.label_text(&k, Some(("le", &le)))
            );
        }
        let count = h.count();
        let _ = writeln!(
            out,
            "{}_bucket{} {count}",
            f.name,
            f.label_text(&k, Some(("le", "+Inf")))
        );
        let sum = f64::from_bits(h.sum.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "{}_sum{} {}",
            f.name,
            f.label_text(&k, None),
            number(sum)
        );
        let _ = writeln!(out, "{}_count{} {count}", f.name, f.label_text(&k, None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::exposition::{Format, Item, parse_with};

    #[test]
    fn renders_what_the_exposition_parser_reads() {
        let m = get();
        m.runs
            .with(&["metrics-test \"quoted\"", "succeeded"])
            .add(2);
        m.step_seconds.with(&["metrics-test"]).observe(0.003);
        m.step_seconds.with(&["metrics-test"]).observe(7.0);
        m.step_seconds.with(&["metrics-test"]).observe(100.0);
        m.outbox_depth.with(&[]).set(3.0);
        let text = m.render();
        let mut samples = BTreeMap::new();
        parse_with(&text, Format::Prometheus004, |item| {
            if let Item::Sample(s) = item {
                samples.insert(s.series.to_owned(), s.value);
            }
        })
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            samples[r#"firebreak_runs_total{runbook="metrics-test \"quoted\"",outcome="succeeded"}"#],
            2.0
        );
        let b = |le: &str| {
            samples[&format!(
                "firebreak_step_duration_seconds_bucket{{action=\"metrics-test\",le=\"{le}\"}}"
            )]
        };
        assert_eq!(
            (b("0.001"), b("0.005"), b("10"), b("60"), b("+Inf")),
            (0.0, 1.0, 2.0, 2.0, 3.0)
        );
        assert_eq!(
            samples[r#"firebreak_step_duration_seconds_sum{action="metrics-test"}"#],
            107.003
        );
        assert!(samples.contains_key("firebreak_outbox_depth"));
        assert!(text.contains("# TYPE firebreak_step_duration_seconds histogram\n"));
    }
}
