//! One incident told from its timeline: the figures a post-incident review
//! asks for (when the trouble began, when it was detected, mitigated and
//! resolved, who did what) and the two renderings of them, the terminal
//! summary of `firebreak timeline INCIDENT` and its `--markdown` report.
//!
//! Model code: it reads [`TimelineEntry`]s and does no I/O; the caller
//! passes the clock's formatting. The texts the control loop writes for
//! alerts are made here too ([`firing_text`], [`began_text`], ...), so
//! the report's reading of them cannot drift from their writing.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use serde::Serialize;

use crate::duration::Millis;
pub use crate::timeline::{About, BOT, By, Kind, Outcome, TimelineEntry};

/// One measurement of an incident's audience.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AudienceRow {
    pub at: Millis,
    pub listening: Option<u64>,
    pub at_risk: Option<u64>,
    pub without_us: Option<u64>,
}

/// The timeline text of an alert that started firing.
/// The longest incident name made for an alert without group-by labels.
pub const UNGROUPED_NAME_MAX: usize = 64;

/// The incident of an alert that carries none of the `incidents.group_by`
/// labels: its own, named from its alert name and its other labels' values
/// (by label name; `severity` left out, so a warning that turns critical
/// stays in its incident), so a node or database alert never lands on a
/// live event's card or in its review. The same alert always names the
/// same incident (after a restart too). Only `[A-Za-z0-9._-]`, so the name
/// is safe in a URL path and in chat; a name over
/// [`UNGROUPED_NAME_MAX`] is cut and ends with the alert's fingerprint.
pub fn ungrouped_name<'a>(
    alertname: &str,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    fingerprint: u64,
) -> String {
    let mut parts = vec![alertname.to_owned()];
    parts.extend(
        labels
            .into_iter()
            .filter(|(k, _)| !matches!(*k, "alertname" | "severity" | "__name__"))
            .map(|(_, v)| v.to_owned()),
    );
    let name: String = parts
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.len() <= UNGROUPED_NAME_MAX {
        return name;
    }
    let hash = format!("{fingerprint:016x}");
    let keep = UNGROUPED_NAME_MAX - hash.len() - 1;
    format!("{}-{hash}", &name[..keep])
}

pub fn firing_text(rule: &str, summary: &str) -> String {
    format!("{rule} firing: {summary}")
}

/// The timeline text, dated when an alert's condition first held, of an
/// alert that reached the bot as firing `later_ms` after that: the rule's
/// `for`, or the delay of the Prometheus or Alertmanager that pushed it.
pub fn began_text(rule: &str, later_ms: Millis) -> String {
    format!(
        "{rule} condition began ({} before it fired here)",
        span(later_ms)
    )
}

/// The timeline text of a resolved alert.
pub fn resolved_text(rule: &str, was_silenced: bool) -> String {
    if was_silenced {
        format!("{rule} resolved (was silenced)")
    } else {
        format!("{rule} resolved")
    }
}

/// A duration as people read it in a review (and in chat): `47s`,
/// `2m17s`, `1h05m`.
pub use crate::human::span;

/// One alert instance's life on the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertLife {
    pub rule: String,
    /// When its condition first held, when that came before it fired.
    pub began: Option<Millis>,
    pub fired: Millis,
    pub resolved: Option<Millis>,
    pub silenced: bool,
}

/// One runbook run on the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct RunLife {
    pub runbook: String,
    /// The run id, where the timeline recorded it.
    pub run: Option<String>,
    pub started: Millis,
    pub by: By,
    /// How it ended; `None` while the timeline ends before the run does.
    pub outcome: Option<Outcome>,
    pub ended: Option<Millis>,
}

/// What a review needs from one incident's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Review {
    pub incident: String,
    pub entries: Vec<TimelineEntry>,
    pub alerts: Vec<AlertLife>,
    pub runs: Vec<RunLife>,
    /// The reference for the times to detect, mitigate and resolve: the
    /// earliest moment an alert's condition held, else the first firing.
    pub began: Option<Millis>,
    /// The first alert firing (silenced ones included: the bot knew).
    pub detected: Option<Millis>,
    /// The first thing done about it after detection, by anyone.
    pub first_response: Option<TimelineEntry>,
    /// The end of the first successful runbook run after detection.
    pub mitigated: Option<(Millis, String)>,
    /// When the last alert resolved, if none is firing at the end.
    pub resolved: Option<Millis>,
    /// What happened to the audience, where it was measured.
    pub audience: Option<AudienceStory>,
}

/// The audience through an incident, from its measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct AudienceStory {
    /// The most listening at once, and when.
    pub peak: (u64, Millis),
    /// Listening at the last measurement.
    pub last: Option<(u64, Millis)>,
    /// The most listening at once in rooms in danger, and when.
    pub most_at_risk: Option<(u64, Millis)>,
    /// Listening at the last measurement had nobody acted.
    pub without_us: Option<(u64, Millis)>,
}

impl AudienceStory {
    /// `None` when no measurement said how many were listening.
    pub fn new(rows: &[AudienceRow]) -> Option<AudienceStory> {
        let peak = largest(rows.iter().filter_map(|r| Some((r.listening?, r.at))))?;
        let last = rows.iter().rev().find_map(|r| Some((r.listening?, r.at)));
        let most_at_risk = largest(
            rows.iter()
                .filter_map(|r| Some((r.at_risk?, r.at)))
                .filter(|x| x.0 > 0),
        );
        let without_us = rows.iter().rev().find_map(|r| Some((r.without_us?, r.at)));
        Some(AudienceStory {
            peak,
            last,
            most_at_risk,
            without_us,
        })
    }

    /// One line: `540,000 listening at the end (peak 560,000); doing
    /// nothing: 0`.
    pub fn line(&self) -> String {
        let n = |v: u64| crate::human::value(v as f64);
        let mut s = match self.last {
            Some((l, _)) => format!("{} listening at the end (peak {})", n(l), n(self.peak.0)),
            None => format!("peak {} listening", n(self.peak.0)),
        };
        if let Some((w, _)) = self.without_us {
            s.push_str(&format!("; doing nothing: {}", n(w)));
        }
        s
    }
}

/// The largest count and when it was first seen (a later tie does not
/// move it).
fn largest(v: impl Iterator<Item = (u64, Millis)>) -> Option<(u64, Millis)> {
    v.fold(None, |best, x| match best {
        Some(b) if b.0 >= x.0 => Some(b),
        _ => Some(x),
    })
}

impl Review {
    /// Reads `entries` (one incident's, oldest first, as the store returns
    /// them). Only the entries' fields are read, never their text.
    pub fn new(incident: &str, entries: Vec<TimelineEntry>) -> Review {
        let mut alerts: Vec<AlertLife> = Vec::new();
        // Alerts of one rule start and end in order: the oldest unresolved
        // one is the one a resolution ends. A `began` entry waits for the
        // firing it precedes.
        let mut open: BTreeMap<&str, VecDeque<usize>> = BTreeMap::new();
        let mut begun: BTreeMap<&str, VecDeque<Millis>> = BTreeMap::new();
        let mut runs: Vec<RunLife> = Vec::new();
        // A run's end finds its start by run id; entries upgraded from
        // before run ids were recorded pair by runbook, oldest first.
        let mut running: BTreeMap<(&str, &str), VecDeque<usize>> = BTreeMap::new();
        for e in &entries {
            let alert = e.about.alert.as_deref().unwrap_or("");
            let run_key = (
                e.about.runbook.as_deref().unwrap_or(""),
                e.about.run.as_deref().unwrap_or(""),
            );
            match &e.kind {
                Kind::AlertBegan => begun.entry(alert).or_default().push_back(e.at),
                Kind::AlertFiring | Kind::AlertSilenced => {
                    let began = begun.get_mut(alert).and_then(|q| q.pop_front());
                    open.entry(alert).or_default().push_back(alerts.len());
                    alerts.push(AlertLife {
                        rule: alert.to_owned(),
                        began,
                        fired: e.at,
                        resolved: None,
                        silenced: e.kind == Kind::AlertSilenced,
                    });
                }
                Kind::AlertResolved => {
                    if let Some(i) = open.get_mut(alert).and_then(|q| q.pop_front()) {
                        alerts[i].resolved = Some(e.at);
                    }
                }
                Kind::RunStarted => {
                    running.entry(run_key).or_default().push_back(runs.len());
                    runs.push(RunLife {
                        runbook: run_key.0.to_owned(),
                        run: e.about.run.clone(),
                        started: e.at,
                        by: e.by.clone(),
                        outcome: None,
                        ended: None,
                    });
                }
                Kind::RunEnded(outcome) => {
                    if let Some(i) = running.get_mut(&run_key).and_then(|q| q.pop_front()) {
                        runs[i].outcome = Some(*outcome);
                        runs[i].ended = Some(e.at);
                    }
                }
                _ => {}
            }
        }
        let detected = alerts.iter().map(|a| a.fired).min();
        let began = alerts.iter().map(|a| a.began.unwrap_or(a.fired)).min();
        let first_response = detected.and_then(|d| {
            entries
                .iter()
                .find(|e| e.at >= d && e.kind.is_action())
                .cloned()
        });
        let mitigated = detected.and_then(|d| {
            runs.iter()
                .filter(|r| r.outcome == Some(Outcome::Succeeded) && r.started >= d)
                .filter_map(|r| Some((r.ended?, r.runbook.clone())))
                .min()
        });
        let resolved = if !alerts.is_empty() && alerts.iter().all(|a| a.resolved.is_some()) {
            alerts.iter().filter_map(|a| a.resolved).max()
        } else {
            None
        };
        Review {
            incident: incident.to_owned(),
            entries,
            alerts,
            runs,
            began,
            detected,
            first_response,
            mitigated,
            resolved,
            audience: None,
        }
    }

    /// Adds the audience's measurements (from the store) to the review.
    pub fn with_audience(mut self, rows: &[AudienceRow]) -> Review {
        self.audience = AudienceStory::new(rows);
        self
    }

    pub fn time_to_detect(&self) -> Option<Millis> {
        Some(self.detected? - self.began?)
    }

    pub fn time_to_mitigate(&self) -> Option<Millis> {
        Some(self.mitigated.as_ref()?.0 - self.began?)
    }

    pub fn time_to_resolve(&self) -> Option<Millis> {
        Some(self.resolved? - self.began?)
    }

    /// Alerts still firing when the timeline ends, by rule.
    pub fn still_firing(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .alerts
            .iter()
            .filter(|a| a.resolved.is_none())
            .map(|a| a.rule.as_str())
            .collect();
        v.dedup();
        v
    }

    /// The review as `firebreak timeline INCIDENT --json` prints it: the
    /// moments that matter, the audience, and every entry as the HTTP API
    /// lists them. `time` writes a moment.
    pub fn json(&self, time: &dyn Fn(Millis) -> String) -> serde_json::Value {
        use serde_json::json;
        let at = |m: Option<Millis>| m.map(time);
        let pair = |p: Option<(u64, Millis)>| p.map(|(n, m)| json!({"count": n, "at": time(m)}));
        let mut v = entries_json(&self.entries, time);
        let summary = json!({
            "incident": self.incident,
            "outcome": self.outcome(),
            "began": at(self.began),
            "detected": at(self.detected),
            "first_response": self.first_response.as_ref().map(|e| entry_json(e, time)),
            "mitigated": self.mitigated.as_ref().map(|(m, runbook)| json!({"at": time(*m), "runbook": runbook})),
            "resolved": at(self.resolved),
            "audience": self.audience.as_ref().map(|a| json!({
                "peak": pair(Some(a.peak)),
                "last": pair(a.last),
                "most_at_risk": pair(a.most_at_risk),
                "without_us": pair(a.without_us),
            })),
        });
        if let (Some(v), serde_json::Value::Object(s)) = (v.as_object_mut(), summary) {
            v.extend(s);
        }
        v
    }

    /// One line on how it ended.
    pub fn outcome(&self) -> String {
        let failed: Vec<String> = self
            .runs
            .iter()
            .filter_map(|r| match r.outcome {
                None | Some(Outcome::Succeeded) => None,
                Some(o) => Some(format!("{} {}", r.runbook, o.as_str().replace('_', " "))),
            })
            .collect();
        let succeeded = self
            .runs
            .iter()
            .filter(|r| r.outcome == Some(Outcome::Succeeded))
            .count();
        let mut s = match (self.alerts.is_empty(), self.resolved) {
            (true, _) => "no alert fired".to_owned(),
            (false, Some(_)) => format!("resolved: all {} alert(s) resolved", self.alerts.len()),
            (false, None) => format!("ongoing: still firing {}", self.still_firing().join(", ")),
        };
        let _ = write!(s, "; {succeeded} runbook run(s) succeeded");
        if !failed.is_empty() {
            let _ = write!(s, ", not: {}", failed.join(", "));
        }
        s
    }

    /// Who did things: the bot counted once per action, people by user
    /// id (shown with the name they last used).
    fn actors(&self) -> (usize, Vec<(String, usize)>) {
        let mut bot = 0;
        let mut people: BTreeMap<&str, (String, usize)> = BTreeMap::new();
        for e in self.entries.iter().filter(|e| e.kind.is_action()) {
            match &e.by {
                By::Person(w) => {
                    let p = people.entry(w.id.as_str()).or_default();
                    p.0 = w.label();
                    p.1 += 1;
                }
                _ => bot += 1,
            }
        }
        (bot, people.into_values().collect())
    }

    /// What each person did, by user id, in the order they first acted:
    /// the name they last used, and their entries (refusals included:
    /// who tried what).
    pub fn people(&self) -> Vec<(String, Vec<&TimelineEntry>)> {
        let mut out: Vec<(&str, String, Vec<&TimelineEntry>)> = Vec::new();
        for e in self.by_people() {
            let By::Person(w) = &e.by else { continue };
            match out.iter_mut().find(|p| p.0 == w.id) {
                Some(p) => {
                    p.1 = w.label();
                    p.2.push(e);
                }
                None => out.push((&w.id, w.label(), vec![e])),
            }
        }
        out.into_iter().map(|(_, l, v)| (l, v)).collect()
    }

    /// The entries of what people did (and tried), in order.
    pub fn by_people(&self) -> impl Iterator<Item = &TimelineEntry> {
        self.entries
            .iter()
            .filter(|e| matches!(e.by, By::Person(_)) && e.kind.is_chat_action())
    }

    /// One line of who did what: `ana (U024): ack, approved, silence ×2`.
    fn people_line(&self) -> Option<String> {
        let people = self.people();
        if people.is_empty() {
            return None;
        }
        let each: Vec<String> = people
            .iter()
            .map(|(who, entries)| {
                let mut kinds: Vec<(String, usize)> = Vec::new();
                for e in entries {
                    let k = what(&e.kind);
                    match kinds.iter_mut().find(|x| x.0 == k) {
                        Some(x) => x.1 += 1,
                        None => kinds.push((k, 1)),
                    }
                }
                let did: Vec<String> = kinds
                    .into_iter()
                    .map(|(k, n)| if n == 1 { k } else { format!("{k} ×{n}") })
                    .collect();
                format!("{who}: {}", did.join(", "))
            })
            .collect();
        Some(each.join("; "))
    }

    fn figure(&self, at: Option<Millis>, time: &dyn Fn(Millis) -> String) -> String {
        match (at, self.began) {
            (Some(t), Some(b)) => format!("{} ({} after it began)", time(t), span(t - b)),
            (Some(t), None) => time(t),
            (None, _) => "not yet".into(),
        }
    }

    /// The terminal summary: figures, then every entry.
    pub fn text(&self, time: &dyn Fn(Millis) -> String) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "incident {} ({} timeline entries)",
            self.incident,
            self.entries.len()
        );
        let began = self.began.map_or_else(|| "no alert fired".to_owned(), time);
        let _ = writeln!(o, "  began       {began}");
        let _ = writeln!(o, "  detected    {}", self.figure(self.detected, time));
        let _ = writeln!(
            o,
            "  mitigated   {}",
            self.figure(self.mitigated.as_ref().map(|m| m.0), time)
        );
        let _ = writeln!(o, "  resolved    {}", self.figure(self.resolved, time));
        let _ = writeln!(o, "  outcome     {}", self.outcome());
        if let Some(a) = &self.audience {
            let _ = writeln!(o, "  audience    {}", a.line());
        }
        if let Some(p) = self.people_line() {
            let _ = writeln!(o, "  people      {p}");
        }
        let _ = writeln!(o);
        for e in &self.entries {
            let _ = writeln!(
                o,
                "{}  {:<18} {:<14} {}",
                time(e.at),
                e.kind.as_str(),
                e.by.label(),
                e.text
            );
        }
        o
    }

    /// The post-incident report.
    pub fn markdown(&self, time: &dyn Fn(Millis) -> String) -> String {
        let mut o = self.markdown_summary(time, usize::MAX);
        let _ = writeln!(o, "## Timeline\n");
        let _ = writeln!(o, "| Time | What | Who | |");
        let _ = writeln!(o, "|---|---|---|---|");
        for e in &self.entries {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                time(e.at),
                what(&e.kind),
                who(&e.by),
                md_cell(&e.text)
            );
        }
        o
    }

    /// The report without its timeline: the figures, the audience, what
    /// fired, what was done and what people did (the web console pages
    /// the timeline apart), each table at most `rows` long and the rest
    /// counted (a storm of 10,000 alerts is one line, not 10,000).
    pub fn markdown_summary(&self, time: &dyn Fn(Millis) -> String, rows: usize) -> String {
        let more = |o: &mut String, n: usize, what: &str| {
            if n > rows {
                let _ = writeln!(
                    o,
                    "\n{} more {what}, not listed here; the timeline has each.",
                    n - rows
                );
            }
        };
        let mut o = String::new();
        let _ = writeln!(o, "# Incident `{}`: post-incident report\n", self.incident);
        let _ = writeln!(o, "**Outcome:** {}.\n", self.outcome());
        let _ = writeln!(o, "| | When | From the start |");
        let _ = writeln!(o, "|---|---|---|");
        let row = |o: &mut String, what: &str, at: Option<Millis>, note: &str| {
            let when = at.map_or_else(|| "—".to_owned(), time);
            let from = match (at, self.began) {
                (Some(t), Some(b)) => span(t - b),
                _ => "—".into(),
            };
            let _ = writeln!(o, "| {what}{note} | {when} | {from} |");
        };
        row(
            &mut o,
            "Began",
            self.began,
            " (an alert's condition first held)",
        );
        row(&mut o, "Detected", self.detected, " (first alert fired)");
        let first = self.first_response.as_ref();
        let note = first.map_or_else(String::new, |e| {
            format!(" ({}: {})", who(&e.by), md_cell(&e.text))
        });
        row(&mut o, "First response", first.map(|e| e.at), &note);
        let note = self
            .mitigated
            .as_ref()
            .map_or_else(String::new, |(_, rb)| format!(" (runbook {rb} succeeded)"));
        row(
            &mut o,
            "Mitigated",
            self.mitigated.as_ref().map(|m| m.0),
            &note,
        );
        row(&mut o, "Resolved", self.resolved, " (last alert resolved)");
        let _ = writeln!(o);
        let figure = |v: Option<Millis>| v.map_or_else(|| "—".to_owned(), span);
        let _ = writeln!(
            o,
            "Time to detect **{}**, to mitigate **{}**, to resolve **{}**.\n",
            figure(self.time_to_detect()),
            figure(self.time_to_mitigate()),
            figure(self.time_to_resolve())
        );

        if let Some(a) = &self.audience {
            let n = |v: u64| crate::human::value(v as f64);
            let _ = writeln!(o, "## The audience\n");
            let _ = writeln!(o, "| | Listeners | When |");
            let _ = writeln!(o, "|---|---|---|");
            let _ = writeln!(o, "| Peak | {} | {} |", n(a.peak.0), time(a.peak.1));
            if let Some((r, at)) = a.most_at_risk {
                let _ = writeln!(o, "| Most at risk at once | {} | {} |", n(r), time(at));
            }
            if let Some((l, at)) = a.last {
                let _ = writeln!(
                    o,
                    "| At the end | {} ({} fewer than the peak) | {} |",
                    n(l),
                    n(a.peak.0.saturating_sub(l)),
                    time(at)
                );
            }
            if let Some((w, at)) = a.without_us {
                let _ = writeln!(
                    o,
                    "| Had nobody acted (the platform's estimate) | {} | {} |",
                    n(w),
                    time(at)
                );
            }
            if let (Some((l, _)), Some((w, _))) = (a.last, a.without_us) {
                let verdict = if l >= w {
                    format!(
                        "the response kept {} more listening than doing nothing would have",
                        n(l - w)
                    )
                } else {
                    format!(
                        "doing nothing would have kept {} more listening than the response did",
                        n(w - l)
                    )
                };
                let _ = writeln!(o, "\nAt the end {verdict}.");
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o, "## What fired\n");
        if self.alerts.is_empty() {
            let _ = writeln!(o, "No alert fired.\n");
        } else {
            let _ = writeln!(o, "| Alert | Condition began | Fired | Resolved |");
            let _ = writeln!(o, "|---|---|---|---|");
            for a in self.alerts.iter().take(rows) {
                let _ = writeln!(
                    o,
                    "| {}{} | {} | {} | {} |",
                    a.rule,
                    if a.silenced { " (silenced)" } else { "" },
                    a.began.map_or_else(|| "—".to_owned(), time),
                    time(a.fired),
                    a.resolved.map_or_else(|| "still firing".to_owned(), time)
                );
            }
            more(&mut o, self.alerts.len(), "alert(s)");
            let _ = writeln!(o);
        }

        let _ = writeln!(o, "## What was done\n");
        let (bot, people) = self.actors();
        let mut by = vec![format!("{bot} automatically")];
        by.extend(people.iter().map(|(p, n)| format!("{n} by {}", md_cell(p))));
        let _ = writeln!(o, "Actions: {}.\n", by.join(", "));
        if !self.runs.is_empty() {
            let _ = writeln!(o, "| Runbook | Started | By | Outcome | Took |");
            let _ = writeln!(o, "|---|---|---|---|---|");
            for r in self.runs.iter().take(rows) {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} |",
                    r.runbook,
                    time(r.started),
                    who(&r.by),
                    r.outcome
                        .map_or("running", Outcome::as_str)
                        .replace('_', " "),
                    r.ended
                        .map_or_else(|| "—".to_owned(), |e| span(e - r.started))
                );
            }
            more(&mut o, self.runs.len(), "run(s)");
            let _ = writeln!(o);
        }

        if self.by_people().next().is_some() {
            let _ = writeln!(o, "### What people did\n");
            let _ = writeln!(o, "| Time | Who | What | |");
            let _ = writeln!(o, "|---|---|---|---|");
            for e in self.by_people().take(rows) {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    time(e.at),
                    who(&e.by),
                    what(&e.kind),
                    md_cell(&e.text)
                );
            }
            more(&mut o, self.by_people().count(), "action(s) by people");
            let _ = writeln!(o);
        }
        o
    }
}

/// An entry's kind as a review says it: `approved`, `denied`,
/// `approval timed out`, `run started`.
fn what(kind: &Kind) -> String {
    kind.as_str().replace('_', " ")
}

fn who(by: &By) -> String {
    match by {
        By::Bot => "automatically".into(),
        By::Schedule(_) => format!("automatically ({by})"),
        By::Person(w) => md_cell(&w.label()),
    }
}

/// Text safe inside a Markdown table cell.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// One timeline entry as the HTTP API and `timeline --json` write it.
pub fn entry_json(e: &TimelineEntry, time: &dyn Fn(Millis) -> String) -> serde_json::Value {
    serde_json::json!({
        "at": time(e.at),
        "kind": e.kind,
        "actor": e.by.label(),
        "actor_kind": e.by.kind(),
        "actor_id": e.by.id(),
        "about": e.about,
        "outcome": e.outcome(),
        "text": e.text,
    })
}

/// Entries in order, and how many of each kind.
pub fn entries_json(
    entries: &[TimelineEntry],
    time: &dyn Fn(Millis) -> String,
) -> serde_json::Value {
    let mut kinds: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for e in entries {
        *kinds.entry(e.kind.as_str()).or_default() += 1;
    }
    let list: Vec<_> = entries.iter().map(|e| entry_json(e, time)).collect();
    serde_json::json!({"entries": list, "kinds": kinds})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ungrouped_alert_names_its_own_incident_safely_and_briefly() {
        let labels = [
            ("alertname", "NodeDown"),
            ("instance", "db-1:9100"),
            ("job", "node"),
            ("severity", "critical"),
        ];
        assert_eq!(
            ungrouped_name("NodeDown", labels, 7),
            "NodeDown-db-1_9100-node"
        );
        // Hostile values stay out of URLs and chat markup.
        let odd = [("path", "/api/<!channel>?x=1 y")];
        assert_eq!(ungrouped_name("Odd", odd, 7), "Odd-_api___channel__x_1_y");
        let long = "x".repeat(300);
        let cut = ungrouped_name("Long", [("v", long.as_str())], 0xabc);
        assert_eq!(cut.len(), UNGROUPED_NAME_MAX);
        assert!(cut.ends_with("-0000000000000abc"), "{cut}");
    }

    const T0: Millis = 1_684_965_600_000;

    fn e(at_s: i64, kind: Kind, by: By, about: About, text: &str) -> TimelineEntry {
        TimelineEntry {
            seq: at_s,
            ..TimelineEntry::new("launch", T0 + at_s * 1000, kind, by, about, text)
        }
    }

    fn utc(at: Millis) -> String {
        format!("+{}s", (at - T0) / 1000)
    }

    fn ana() -> By {
        By::Person(crate::roles::Who::new("U024", "Ana"))
    }

    fn launch() -> Vec<TimelineEntry> {
        let run = |rb: &str, id: &str| About::run(rb, id);
        let mute = || run("mute-feedback-speaker", "m-1");
        vec![
            e(
                -3300,
                Kind::Checklist,
                By::Schedule("T-1h".into()),
                About::default(),
                "checklist launch-readiness: NO-GO",
            ),
            e(
                32,
                Kind::AlertBegan,
                By::Bot,
                About::alert("SpeakerFeedback"),
                &began_text("SpeakerFeedback", 15_000),
            ),
            e(
                47,
                Kind::AlertFiring,
                By::Bot,
                About::alert("SpeakerFeedback"),
                &firing_text("SpeakerFeedback", "host feeds back"),
            ),
            e(
                47,
                Kind::RunStarted,
                By::Bot,
                mute().with_alert(Some("SpeakerFeedback")),
                "runbook mute-feedback-speaker started for SpeakerFeedback",
            ),
            e(
                47,
                Kind::Step,
                By::Bot,
                mute().with_step("mute"),
                "mute: POST sim/... → 200 (http)",
            ),
            e(
                48,
                Kind::RunEnded(Outcome::Succeeded),
                By::Bot,
                mute(),
                "runbook mute-feedback-speaker succeeded in 445ms",
            ),
            e(
                60,
                Kind::Ack,
                ana(),
                About::alert("SpeakerFeedback"),
                "acknowledged | by Ana",
            ),
            e(
                62,
                Kind::AlertResolved,
                By::Bot,
                About::alert("SpeakerFeedback"),
                &resolved_text("SpeakerFeedback", false),
            ),
            e(
                137,
                Kind::AlertFiring,
                By::Bot,
                About::alert("Breach"),
                &firing_text("Breach", "room fills"),
            ),
            e(
                137,
                Kind::RunStarted,
                By::Bot,
                run("move", "v-1"),
                "runbook move started for Breach",
            ),
            e(
                138,
                Kind::RunStarted,
                ana(),
                run("move", "v-2"),
                "runbook move started by Ana",
            ),
            // Ana's run ends first: runs pair by id, not by order.
            e(
                139,
                Kind::RunEnded(Outcome::Failed),
                ana(),
                run("move", "v-2"),
                "runbook move failed: busy",
            ),
            e(
                153,
                Kind::RunEnded(Outcome::Succeeded),
                By::Bot,
                run("move", "v-1"),
                "runbook move succeeded in 16s",
            ),
            e(
                257,
                Kind::AlertResolved,
                By::Bot,
                About::alert("Breach"),
                &resolved_text("Breach", false),
            ),
        ]
    }

    #[test]
    fn the_figures_run_from_when_the_condition_began() {
        let r = Review::new("launch", launch());
        assert_eq!(r.began, Some(T0 + 32_000));
        assert_eq!(r.detected, Some(T0 + 47_000));
        assert_eq!(r.time_to_detect(), Some(15_000));
        // The mute succeeded first; a later failure does not undo it.
        assert_eq!(
            r.mitigated,
            Some((T0 + 48_000, "mute-feedback-speaker".to_owned()))
        );
        assert_eq!(r.time_to_mitigate(), Some(16_000));
        assert_eq!(r.resolved, Some(T0 + 257_000));
        assert_eq!(r.time_to_resolve(), Some(225_000));
        assert_eq!(r.first_response.as_ref().unwrap().kind, Kind::RunStarted);
        // The checklist at T-1h is on the timeline but not an alert: it
        // does not move the start.
        assert_eq!(r.alerts.len(), 2);
        assert_eq!(r.alerts[0].began, Some(T0 + 32_000));
        assert_eq!(r.alerts[1].began, None);
    }

    #[test]
    fn rewording_every_message_leaves_the_review_unchanged() {
        let before = Review::new("launch", launch());
        let reworded = launch()
            .into_iter()
            .map(|e| TimelineEntry {
                text: format!("reworded: {}", e.text.chars().rev().collect::<String>()),
                ..e
            })
            .collect();
        let mut after = Review::new("launch", reworded);
        // Only the words differ: give them back, and all else is equal.
        after.entries = before.entries.clone();
        if let Some(f) = &mut after.first_response {
            f.text = before.first_response.as_ref().unwrap().text.clone();
        }
        assert_eq!(after, before);
        assert_eq!(after.markdown(&utc), before.markdown(&utc));
    }

    #[test]
    fn the_review_tells_what_happened_to_the_audience() {
        let row = |at: i64, listening, at_risk, without_us| AudienceRow {
            at: T0 + at * 1000,
            listening,
            at_risk,
            without_us,
        };
        let rows = [
            row(30, Some(400_000), Some(0), Some(400_000)),
            row(60, Some(560_000), Some(560_000), Some(560_000)),
            row(90, None, None, None),
            row(120, Some(540_000), Some(0), Some(0)),
        ];
        let r = Review::new("launch", launch()).with_audience(&rows);
        let a = r.audience.as_ref().unwrap();
        assert_eq!(a.peak, (560_000, T0 + 60_000));
        assert_eq!(a.most_at_risk, Some((560_000, T0 + 60_000)));
        assert_eq!(a.last, Some((540_000, T0 + 120_000)));
        assert_eq!(a.without_us, Some((0, T0 + 120_000)));
        let md = r.markdown(&utc);
        for want in [
            "## The audience",
            "| Peak | 560,000 | ",
            "| At the end | 540,000 (20,000 fewer than the peak) | ",
            "| Had nobody acted (the platform's estimate) | 0 | ",
            "At the end the response kept 540,000 more listening than doing nothing would have.",
        ] {
            assert!(md.contains(want), "{want}\n{md}");
        }
        assert!(r.text(&utc).contains(
            "  audience    540,000 listening at the end (peak 560,000); doing nothing: 0"
        ));
        // Never measured: no section rather than a table of dashes.
        let none = Review::new("launch", launch()).with_audience(&[row(30, None, None, Some(1))]);
        assert!(none.audience.is_none());
        assert!(!none.markdown(&utc).contains("## The audience"));
    }

    #[test]
    fn runs_pair_in_order_and_keep_who_started_them() {
        let r = Review::new("launch", launch());
        let runs: Vec<(&str, By, Option<Outcome>)> = r
            .runs
            .iter()
            .map(|r| (r.runbook.as_str(), r.by.clone(), r.outcome))
            .collect();
        assert_eq!(
            runs,
            [
                ("mute-feedback-speaker", By::Bot, Some(Outcome::Succeeded)),
                ("move", By::Bot, Some(Outcome::Succeeded)),
                ("move", ana(), Some(Outcome::Failed)),
            ]
        );
        assert_eq!(
            r.outcome(),
            "resolved: all 2 alert(s) resolved; 2 runbook run(s) succeeded, not: move failed"
        );
    }

    #[test]
    fn an_alert_still_firing_leaves_the_incident_ongoing() {
        let mut t = launch();
        t.pop();
        t.push(e(
            300,
            Kind::AlertSilenced,
            By::Bot,
            About::alert("Other"),
            "Other firing, silenced by s-1 (x, by Ana)",
        ));
        t.push(e(
            400,
            Kind::AlertResolved,
            By::Bot,
            About::alert("Other"),
            &resolved_text("Other", true),
        ));
        let r = Review::new("launch", t);
        assert_eq!(r.resolved, None);
        assert_eq!(r.still_firing(), ["Breach"]);
        assert!(r.alerts[2].silenced);
        assert_eq!(r.alerts[2].resolved, Some(T0 + 400_000));
        assert!(
            r.outcome().starts_with("ongoing: still firing Breach"),
            "{}",
            r.outcome()
        );
        assert!(
            r.text(&utc).contains("resolved    not yet"),
            "{}",
            r.text(&utc)
        );
    }

    #[test]
    fn a_timeline_without_alerts_has_no_figures() {
        let r = Review::new("launch", launch()[..1].to_vec());
        assert_eq!(
            (r.began, r.detected, r.time_to_mitigate(), r.resolved),
            (None, None, None, None)
        );
        assert!(r.outcome().starts_with("no alert fired"));
        let md = r.markdown(&utc);
        assert!(md.contains("No alert fired."), "{md}");
        assert!(
            md.contains("| +-3300s | checklist | automatically (schedule T-1h) |"),
            "{md}"
        );
    }

    #[test]
    fn the_markdown_report_says_who_did_what_and_escapes_cells() {
        let md = Review::new("launch", launch()).markdown(&utc);
        for needle in [
            "# Incident `launch`: post-incident report",
            "| Detected (first alert fired) | +47s | 15s |",
            "| Mitigated (runbook mute-feedback-speaker succeeded) | +48s | 16s |",
            "Time to detect **15s**, to mitigate **16s**, to resolve **3m45s**.",
            "| SpeakerFeedback | +32s | +47s | +62s |",
            "| move | +137s | automatically | succeeded | 16s |",
            "| move | +138s | Ana (U024) | failed | 1s |",
            "Actions: 4 automatically, 2 by Ana (U024).",
            "| +60s | ack | Ana (U024) | acknowledged \\| by Ana |",
        ] {
            assert!(md.contains(needle), "missing {needle:?} in\n{md}");
        }
    }

    #[test]
    fn a_summary_with_a_row_limit_counts_what_it_leaves_out() {
        let r = Review::new("launch", launch());
        let full = r.markdown_summary(&utc, usize::MAX);
        assert!(!full.contains("more run(s)") && !full.contains("## Timeline"));
        assert!(r.markdown(&utc).starts_with(&full));
        let short = r.markdown_summary(&utc, 1);
        for needle in [
            "| SpeakerFeedback | +32s | +47s | +62s |\n\n1 more alert(s), not listed here; the timeline has each.",
            "| mute-feedback-speaker | +47s | automatically | succeeded | 1s |\n\n2 more run(s), not listed here",
            "| +60s | Ana (U024) | ack | acknowledged \\| by Ana |\n\n1 more action(s) by people, not listed here",
        ] {
            assert!(short.contains(needle), "missing {needle:?} in\n{short}");
        }
        assert!(!short.contains("| move |"), "{short}");
    }

    /// Issue 22, item 11: approvals are the approver's, a denial or a
    /// time-out reads as what it was, and what people did at the
    /// console (a silence, its end, an abort) is in the review.
    #[test]
    fn the_review_names_who_answered_each_gate_and_what_people_did() {
        let bob = || By::Person(crate::roles::Who::new("U777", "Bob"));
        let gate = |run: &str, step: &str| About::run("move", run).with_step(step);
        let mut entries = launch();
        entries.extend([
            e(
                260,
                Kind::Silence,
                ana(),
                About::default(),
                "silenced alertname=\"Breach\" for 5m by Ana (U024) (id s1)",
            ),
            e(
                270,
                Kind::Approved,
                ana(),
                gate("v-3", "approval:move"),
                "`move` approved by Ana (U024)",
            ),
            e(
                280,
                Kind::Denied,
                bob(),
                gate("v-4", "approval:move"),
                "`move` denied by Bob (U777)",
            ),
            e(
                290,
                Kind::ApprovalTimedOut,
                By::Bot,
                gate("v-5", "approval:move"),
                "nobody approved `move` within 10m",
            ),
            e(
                300,
                Kind::Abort,
                bob(),
                About::run("move", "v-6"),
                "run v-6 of move aborted by Bob (U777)",
            ),
            e(
                310,
                Kind::Unsilence,
                ana(),
                About::default(),
                "silence s1 (alertname=\"Breach\") ended by Ana (U024) after 50s",
            ),
        ]);
        let r = Review::new("launch", entries);
        let people: Vec<(String, Vec<String>)> = r
            .people()
            .into_iter()
            .map(|(p, es)| (p, es.iter().map(|e| e.kind.to_string()).collect()))
            .collect();
        assert_eq!(
            people,
            [
                (
                    "Ana (U024)".to_owned(),
                    vec!["ack", "run_started", "silence", "approved", "unsilence"]
                        .into_iter()
                        .map(String::from)
                        .collect()
                ),
                (
                    "Bob (U777)".to_owned(),
                    vec!["denied".to_owned(), "abort".to_owned()]
                ),
            ]
        );
        let text = r.text(&utc);
        let md = r.markdown(&utc);
        assert!(!text.contains('✓') && !md.contains('✓'), "{text}\n{md}");
        insta::assert_snapshot!("review_people_text", text);
        insta::assert_snapshot!("review_people_markdown", md);
    }

    #[test]
    fn an_answer_recorded_before_answers_were_kinds_still_reads() {
        assert_eq!(Kind::parse("approval"), Kind::Approval);
        assert!(Kind::Approval.is_chat_action() && Kind::Approval.is_action());
        assert!(!Kind::Step.is_chat_action());
    }
}
