//! The incident card: the one message per incident that is updated in
//! place as the incident moves (firing, mitigating, waiting for approval,
//! recovered, resolved, failed). The control loop owns each card and
//! posts every new version to the card's slot; the outbox turns that into
//! an update of the same message, and sends only the newest version when
//! several are waiting. Model only: no I/O, times are arguments.

use crate::run_state::{Going, Outcome, RunState, StepState};
use serde::{Deserialize, Serialize};

use crate::clock::Millis;

/// The slot an incident's card lives in.
pub const SLOT: &str = "card";

/// Alerts shown on a card, each in its own Slack section; the rest are
/// counted.
const SHOWN_ALERTS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Firing,
    Mitigating,
    AwaitingApproval,
    /// The runbook succeeded; alerts may still be firing until the rules
    /// see the recovery.
    Recovered,
    Resolved,
    /// The runbook failed, rolled back, was aborted or interrupted: people
    /// must act.
    Failed,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Firing => "FIRING",
            Status::Mitigating => "MITIGATING",
            Status::AwaitingApproval => "WAITING FOR APPROVAL",
            Status::Recovered => "RECOVERED",
            Status::Resolved => "RESOLVED",
            Status::Failed => "FAILED",
        }
    }

    pub fn icon(self) -> &'static str {
        match self {
            Status::Firing => "🔥",
            Status::Mitigating => "🛠️",
            Status::AwaitingApproval => "✋",
            Status::Recovered => "🩹",
            Status::Resolved => "✅",
            Status::Failed => "🚨",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CardAlert {
    pub name: String,
    pub severity: Option<String>,
    /// The labels that tell this alert from others of its rule.
    pub labels: Vec<(String, String)>,
    /// NaN for an alert without a value (one pushed without a `value`
    /// annotation); stored as `null`, as JSON has no NaN (nor infinities,
    /// which come back as NaN: shown as no value).
    #[serde(with = "nan_as_null")]
    pub value: f64,
    pub since: Millis,
    pub summary: Option<String>,
    pub firing: bool,
}

/// JSON has no NaN: serde_json writes it as `null` and then cannot read
/// that back as a number, which made every card of a pushed alert an
/// unreadable outbox row.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CardRun {
    pub id: String,
    pub runbook: String,
    pub state: RunState,
    /// The latest step and how it ended, e.g. ("create_room", succeeded).
    pub last_step: Option<(String, StepState)>,
    /// The gate a person must answer, while the run waits at one.
    pub waiting: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub incident: String,
    pub status: Status,
    /// Firing ones first, newest last within each group.
    pub alerts: Vec<CardAlert>,
    pub run: Option<CardRun>,
    /// Runbooks that can be started by hand for this incident.
    pub runnable: Vec<String>,
    pub acked_by: Option<String>,
    /// Matchers that silence this incident's alerts, in Alertmanager
    /// syntax (`{event="launch"}`), for the Silence button.
    pub silence: Option<String>,
    pub updated_at: Millis,
    /// Alerts a posted copy leaves out, firing and resolved (see
    /// [`Card::posted`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_firing: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_resolved: usize,
    /// The audience, from metrics; `None` until first measured, or where
    /// no audience queries are configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Audience>,
    /// What the bot cannot see while the incident is open (a source down,
    /// a rule failing, pushes stopped): the card of a live event must not
    /// look calm because the bot went blind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blind: Vec<Blind>,
}

/// One thing the bot cannot see, as a card shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Blind {
    /// What is lost, for people (`scrape target `sim``).
    pub what: String,
    pub since: Millis,
    pub why: String,
}

/// Who the incident is about, in listeners: what people on call weigh
/// every decision against. Each figure is `None` when its query gave
/// nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Audience {
    /// Listening now.
    pub listening: Option<u64>,
    /// The most listening at once since the incident began.
    pub peak: u64,
    /// Listening in rooms in danger now (saturating, failing).
    pub at_risk: Option<u64>,
    /// Listening now had nobody acted, where the platform can say.
    pub without_us: Option<u64>,
    pub at: Millis,
}

impl Audience {
    /// Folds a new measurement in: the peak is kept across measurements.
    pub fn measured(
        prev: Option<&Audience>,
        listening: Option<u64>,
        at_risk: Option<u64>,
        without_us: Option<u64>,
        at: Millis,
    ) -> Audience {
        let peak = prev.map_or(0, |a| a.peak).max(listening.unwrap_or(0));
        Audience {
            listening,
            peak,
            at_risk,
            without_us,
            at,
        }
    }

    /// Listeners gone since the peak.
    pub fn lost(&self) -> Option<u64> {
        self.listening.map(|l| self.peak.saturating_sub(l))
    }

    /// `540,000 listening (peak 560,000: 20,000 lost) · 480,000 at risk ·
    /// doing nothing: 0 listening`.
    pub fn line(&self) -> String {
        let n = |v: u64| human_value(v as f64);
        let mut parts = Vec::new();
        match (self.listening, self.lost()) {
            (Some(l), Some(0)) => parts.push(format!("{} listening", n(l))),
            (Some(l), Some(lost)) => parts.push(format!(
                "{} listening (peak {}: {} lost)",
                n(l),
                n(self.peak),
                n(lost)
            )),
            _ => parts.push("listeners unknown (the audience query gave nothing)".to_owned()),
        }
        if let Some(r) = self.at_risk.filter(|r| *r > 0) {
            parts.push(format!("{} at risk", n(r)));
        }
        if let Some(w) = self.without_us {
            parts.push(format!("doing nothing: {} listening", n(w)));
        }
        parts.join(" · ")
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Card {
    pub fn new(incident: &str, now: Millis) -> Self {
        Card {
            incident: incident.to_owned(),
            status: Status::Firing,
            alerts: Vec::new(),
            run: None,
            runnable: Vec::new(),
            acked_by: None,
            silence: None,
            updated_at: now,
            more_firing: 0,
            more_resolved: 0,
            audience: None,
            blind: Vec::new(),
        }
    }

    /// The copy that goes to chat: the alerts a card shows, the rest only
    /// counted. A storm's card would otherwise carry every alert in every
    /// version (hundreds of kilobytes each, stored until sent).
    pub fn posted(&self) -> Card {
        let cut = self.alerts.len().min(SHOWN_ALERTS);
        let left_out = &self.alerts[cut..];
        let firing = left_out.iter().filter(|a| a.firing).count();
        Card {
            alerts: self.alerts[..cut].to_vec(),
            more_firing: self.more_firing + firing,
            more_resolved: self.more_resolved + left_out.len() - firing,
            ..self.clone_without_alerts()
        }
    }

    fn clone_without_alerts(&self) -> Card {
        Card {
            incident: self.incident.clone(),
            status: self.status,
            alerts: Vec::new(),
            run: self.run.clone(),
            runnable: self.runnable.clone(),
            acked_by: self.acked_by.clone(),
            silence: self.silence.clone(),
            updated_at: self.updated_at,
            more_firing: self.more_firing,
            more_resolved: self.more_resolved,
            audience: self.audience.clone(),
            blind: self.blind.clone(),
        }
    }

    /// The alerts shown, in order.
    pub fn shown(&self) -> &[CardAlert] {
        &self.alerts[..self.alerts.len().min(SHOWN_ALERTS)]
    }

    /// Alerts not shown: counted, whether left out of a posted copy or
    /// beyond what a card shows.
    pub fn more(&self) -> usize {
        self.alerts.len().saturating_sub(SHOWN_ALERTS) + self.more_firing + self.more_resolved
    }

    /// Firing alerts not shown.
    pub fn more_firing(&self) -> usize {
        self.alerts
            .iter()
            .skip(SHOWN_ALERTS)
            .filter(|a| a.firing)
            .count()
            + self.more_firing
    }

    /// Adds or refreshes an alert (same name and labels) as firing.
    pub fn firing(&mut self, a: CardAlert, now: Millis) {
        match self
            .alerts
            .iter_mut()
            .find(|x| x.name == a.name && x.labels == a.labels)
        {
            Some(x) => *x = a,
            None => self.alerts.push(a),
        }
        self.alerts.sort_by_key(|a| !a.firing);
        if matches!(self.status, Status::Resolved | Status::Recovered) && self.run.is_none() {
            self.status = Status::Firing;
        }
        self.updated_at = now;
    }

    /// Marks an alert resolved; the incident is resolved when no alert
    /// fires and no run is in progress.
    pub fn resolved(&mut self, name: &str, labels: &[(String, String)], now: Millis) {
        if let Some(x) = self
            .alerts
            .iter_mut()
            .find(|x| x.name == name && x.labels == labels)
        {
            x.firing = false;
        }
        self.alerts.sort_by_key(|a| !a.firing);
        if !self.any_firing() && !self.run_active() {
            self.status = Status::Resolved;
        }
        self.updated_at = now;
    }

    pub fn run_progress(&mut self, run: CardRun, now: Millis) {
        self.status = match run.state {
            RunState::Going(Going::AwaitingApproval) => Status::AwaitingApproval,
            RunState::Going(Going::Running | Going::RollingBack) => Status::Mitigating,
            RunState::Ended(Outcome::Succeeded) => {
                if self.any_firing() {
                    Status::Recovered
                } else {
                    Status::Resolved
                }
            }
            RunState::Ended(
                Outcome::Failed | Outcome::RolledBack | Outcome::Aborted | Outcome::Interrupted,
            ) => Status::Failed,
        };
        self.run = Some(run);
        self.updated_at = now;
    }

    pub fn ack(&mut self, by: &str, now: Millis) {
        self.acked_by = Some(by.to_owned());
        self.updated_at = now;
    }

    pub fn any_firing(&self) -> bool {
        self.more_firing > 0 || self.alerts.iter().any(|a| a.firing)
    }

    fn run_active(&self) -> bool {
        self.run.as_ref().is_some_and(|r| !r.state.is_over())
    }

    /// The text Slack shows in notifications and the console prints:
    /// everything a person needs at a glance, on a few lines.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} *{}* incident {}",
            self.status.icon(),
            self.status.word(),
            self.incident
        );
        if let Some(by) = &self.acked_by {
            out.push_str(&format!(" (acked by {by})"));
        }
        if let Some(a) = &self.audience {
            out.push_str(&format!("\n👥 {}", a.line()));
        }
        for b in &self.blind {
            out.push_str(&format!("\n⚠ blind: {} ({})", b.what, b.why));
        }
        for a in self.shown() {
            out.push('\n');
            out.push_str(&alert_line(a));
        }
        if self.more() > 0 {
            out.push_str(&format!("\n… and {} more alerts", self.more()));
        }
        if let Some(r) = &self.run {
            out.push('\n');
            out.push_str(&run_line(r));
        }
        out
    }
}

pub(crate) fn alert_line(a: &CardAlert) -> String {
    let state = if a.firing { "firing" } else { "resolved" };
    let sev = a
        .severity
        .as_deref()
        .map(|s| format!(" [{s}]"))
        .unwrap_or_default();
    let labels = if a.labels.is_empty() {
        String::new()
    } else {
        format!(
            " {{{}}}",
            a.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let summary = a
        .summary
        .as_deref()
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    // Alerts pushed by Alertmanager or Prometheus carry no value.
    let value = if a.value.is_nan() {
        String::new()
    } else {
        format!(", value {}", human_value(a.value))
    };
    format!("• {}{sev}{labels} {state}{value}{summary}", a.name)
}

pub(crate) fn run_line(r: &CardRun) -> String {
    let mut s = format!("runbook {} (run {}): {}", r.runbook, r.id, r.state);
    if let Some((step, how)) = &r.last_step {
        s.push_str(&format!(", last step `{step}` {how}"));
    }
    if let Some(w) = &r.waiting {
        s.push_str(&format!(", waiting for approval of `{w}`"));
    }
    s
}

pub use crate::human::value as human_value;

/// At most this many "Run" actions, one per runbook that can be started.
const RUN_ACTIONS: usize = 3;

/// Something a person can do from a card, and the chat command it stands
/// for: a click anywhere (Slack, the console) is that command typed.
#[derive(Clone, Debug, PartialEq)]
pub struct CardAction {
    pub label: String,
    pub command: String,
    /// `primary` or `danger`, where the action deserves it.
    pub style: Option<&'static str>,
    /// Asked before it is done.
    pub confirm: Option<Confirm>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Confirm {
    pub title: &'static str,
    pub text: String,
    pub yes: &'static str,
    pub no: &'static str,
}

impl Card {
    /// What a person can do now: nothing to acknowledge once it is over,
    /// approve and deny only while a gate waits, abort only while a run
    /// runs.
    pub fn actions(&self) -> Vec<CardAction> {
        let act = |label: &str, command: String, style| CardAction {
            label: label.to_owned(),
            command,
            style,
            confirm: None,
        };
        let mut out = Vec::new();
        let over = self.status == Status::Resolved;
        if !over && self.acked_by.is_none() {
            out.push(act("Acknowledge", format!("ack {}", self.incident), None));
        }
        if let Some(m) = &self.silence
            && self.any_firing()
        {
            out.push(act("Silence 1h", format!("silence {m} 1h"), None));
        }
        let running = matches!(self.status, Status::Mitigating | Status::AwaitingApproval);
        if let Some(r) = &self.run {
            if self.status == Status::AwaitingApproval {
                out.push(act("Approve", format!("approve {}", r.id), Some("primary")));
                out.push(act("Deny", format!("deny {}", r.id), Some("danger")));
            }
            if running {
                out.push(CardAction {
                    confirm: Some(Confirm {
                        title: "Abort the run?",
                        text: format!("Stop {} now. Steps already done are not undone.", r.runbook),
                        yes: "Abort",
                        no: "Keep running",
                    }),
                    ..act("Abort", format!("abort {}", r.id), Some("danger"))
                });
            }
        }
        if !over && !running {
            for rb in self.runnable.iter().take(RUN_ACTIONS) {
                out.push(act(&format!("Run {rb}"), format!("run {rb}"), None));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audience_line_keeps_the_peak_and_says_what_was_lost() {
        let a = Audience::measured(None, Some(500_000), Some(480_000), Some(480_000), 1);
        assert_eq!(
            a.line(),
            "500,000 listening · 480,000 at risk · doing nothing: 480,000 listening"
        );
        let b = Audience::measured(Some(&a), Some(560_000), Some(0), Some(0), 2);
        assert_eq!(b.line(), "560,000 listening · doing nothing: 0 listening");
        let c = Audience::measured(Some(&b), Some(540_000), None, None, 3);
        assert_eq!(c.peak, 560_000);
        assert_eq!(c.line(), "540,000 listening (peak 560,000: 20,000 lost)");
        // A failed query is unknown, never zero, and forgets no peak.
        let d = Audience::measured(Some(&c), None, None, Some(0), 4);
        assert_eq!(d.peak, 560_000);
        assert_eq!(
            d.line(),
            "listeners unknown (the audience query gave nothing) · doing nothing: 0 listening"
        );
        let mut card = Card::new("launch", 0);
        card.audience = Some(c.clone());
        assert!(
            card.text()
                .contains("\n👥 540,000 listening (peak 560,000: 20,000 lost)"),
            "{}",
            card.text()
        );
        assert_eq!(card.posted().audience, Some(c));
    }

    fn alert(name: &str, room: &str) -> CardAlert {
        CardAlert {
            name: name.into(),
            severity: Some("critical".into()),
            labels: vec![("room".into(), room.into())],
            value: 612_345.0,
            since: 0,
            summary: Some("room filling fast".into()),
            firing: true,
        }
    }

    /// Regression: a pushed alert's NaN value made the card's outbox row
    /// unreadable, so no card of a pushed alert ever reached chat.
    #[test]
    fn a_card_without_a_value_survives_the_outbox_json() {
        let mut a = alert("Pushed", "main");
        a.value = f64::NAN;
        let mut msg = crate::chat::ChatMessage {
            text: "card".into(),
            card: Some(Card::new("launch", 0)),
            ..Default::default()
        };
        msg.card.as_mut().unwrap().firing(a, 0);
        let json = serde_json::to_string(&msg).unwrap();
        assert!(json.contains(r#""value":null"#), "{json}");
        let back: crate::chat::ChatMessage = serde_json::from_str(&json).unwrap();
        assert!(back.card.unwrap().alerts[0].value.is_nan());
        let one: CardAlert =
            serde_json::from_str(&serde_json::to_string(&alert("A", "x")).unwrap()).unwrap();
        assert_eq!(one.value, 612_345.0);
    }

    fn run(state: &str) -> CardRun {
        CardRun {
            id: "move-1".into(),
            runbook: "move-to-secondary-room".into(),
            state: RunState::parse(state).unwrap(),
            last_step: None,
            waiting: None,
        }
    }

    #[test]
    fn the_card_moves_through_the_incident_lifecycle() {
        let mut c = Card::new("launch", 0);
        c.firing(alert("Breach", "main"), 1);
        assert_eq!(c.status, Status::Firing);
        c.run_progress(run("running"), 2);
        assert_eq!(c.status, Status::Mitigating);
        c.run_progress(run("awaiting_approval"), 3);
        assert_eq!(c.status, Status::AwaitingApproval);
        c.run_progress(run("succeeded"), 4);
        assert_eq!(c.status, Status::Recovered, "the alert still fires");
        c.resolved("Breach", &[("room".into(), "main".into())], 5);
        assert_eq!(c.status, Status::Resolved);
        // It comes back: firing again.
        c.run = None;
        c.firing(alert("Breach", "main"), 6);
        assert_eq!(c.status, Status::Firing);
        c.run_progress(run("rolled_back"), 7);
        assert_eq!(c.status, Status::Failed);
        // Once the alert resolves the incident is over; the card still
        // shows the run that failed.
        c.resolved("Breach", &[("room".into(), "main".into())], 8);
        assert_eq!(c.status, Status::Resolved);
    }

    #[test]
    fn an_alert_resolving_mid_run_leaves_the_incident_mitigating() {
        let mut c = Card::new("launch", 0);
        c.firing(alert("Breach", "main"), 1);
        c.run_progress(run("running"), 2);
        c.resolved("Breach", &[("room".into(), "main".into())], 3);
        assert_eq!(c.status, Status::Mitigating);
        c.run_progress(run("succeeded"), 4);
        assert_eq!(c.status, Status::Resolved);
    }

    #[test]
    fn the_text_shows_a_few_alerts_and_counts_the_rest() {
        let mut c = Card::new("launch", 0);
        for i in 0..7 {
            c.firing(alert("Breach", &format!("r{i}")), 1);
        }
        c.resolved("Breach", &[("room".into(), "r0".into())], 2);
        c.ack("alice", 3);
        let mut r = run("running");
        r.last_step = Some(("create_room".into(), StepState::Succeeded));
        c.run_progress(r, 4);
        insta::assert_snapshot!(c.text(), @r"
        🛠️ *MITIGATING* incident launch (acked by alice)
        • Breach [critical] {room=r1} firing, value 612,345: room filling fast
        • Breach [critical] {room=r2} firing, value 612,345: room filling fast
        • Breach [critical] {room=r3} firing, value 612,345: room filling fast
        • Breach [critical] {room=r4} firing, value 612,345: room filling fast
        • Breach [critical] {room=r5} firing, value 612,345: room filling fast
        … and 2 more alerts
        runbook move-to-secondary-room (run move-1): running, last step `create_room` succeeded
        ");
    }

    /// Found by the load benchmark: a storm's card carried every alert in
    /// every posted version, up to 680 KiB each, gigabytes in all.
    #[test]
    fn the_posted_copy_carries_what_is_shown_and_counts_the_rest() {
        let mut c = Card::new("launch", 0);
        for i in 0..1000 {
            c.firing(alert("Breach", &format!("r{i}")), 1);
        }
        for i in 0..3 {
            c.resolved("Breach", &[("room".into(), format!("r{i}"))], 2);
        }
        let p = c.posted();
        assert_eq!(p.alerts.len(), 5);
        assert_eq!((p.more_firing, p.more_resolved), (992, 3));
        assert_eq!((p.more(), p.more_firing()), (c.more(), c.more_firing()));
        assert_eq!(p.text(), c.text(), "people see the same card");
        assert!(p.any_firing());
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.len() < 2000, "{} bytes", json.len());
        let back: Card = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.posted(), p, "posting a posted copy changes nothing");
        // A card with few alerts is posted whole, without the counts.
        let mut small = Card::new("x", 0);
        small.firing(alert("Breach", "main"), 1);
        assert_eq!(small.posted(), small);
        assert!(!serde_json::to_string(&small).unwrap().contains("more_"));
    }
}
