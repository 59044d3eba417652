//! The console's pages, each a pure function from what the bot knows to
//! markup: the night now, incidents and one incident's review, runs and
//! one run's steps. No I/O here; `mod.rs` reads the control loop and the
//! store and hands the results in.

use std::fmt::Write as _;

use super::html::{Banner, Level, esc, seg, table};
use crate::chat::blocks::utc;
use crate::chat::card::Card;
use crate::clock::Millis;
use crate::control::Status;
use crate::human::duration;
use crate::incident::Review;
use crate::store::{IncidentSummary, RunRecord, StepRecord};

/// What a signed-in person's forms carry: their role (which buttons to
/// draw), the CSRF token, and the page to come back to.
#[derive(Clone, Debug, PartialEq)]
pub struct Acts {
    pub role: crate::roles::Role,
    pub csrf: String,
    pub back: String,
}

impl Acts {
    /// A button that sends `command` (a chat command line) as this
    /// person, drawn only when their role reaches the command's: a viewer
    /// sees no abort button, and the command itself refuses anyone below
    /// its role whatever they post.
    pub fn button(&self, label: &str, command: &str) -> String {
        let name = command.split_whitespace().next().unwrap_or_default();
        if crate::command::find(name).is_none_or(|spec| self.role < spec.role) {
            return String::new();
        }
        format!(
            "<form class=\"act\" method=\"post\" action=\"/act\">{}<button name=\"command\" value=\"{}\">{}</button></form>",
            self.hidden(),
            esc(command),
            esc(label)
        )
    }

    fn hidden(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"back\" value=\"{}\">",
            esc(&self.csrf),
            esc(&self.back)
        )
    }

    /// A line to type any command into, with chat's grammar.
    pub fn command_box(&self) -> String {
        format!(
            "<h2>Command</h2><form class=\"cmd\" method=\"post\" action=\"/act\">{}\
<label for=\"command\">The same commands as chat, as you:</label>\
<input id=\"command\" name=\"command\" autocomplete=\"off\" spellcheck=\"false\" maxlength=\"2000\" placeholder=\"help\" required>\
<button>Send</button></form>",
            self.hidden()
        )
    }
}

/// How many rows a list shows on one page.
pub const PAGE_ROWS: usize = 50;

/// What every page warns about: blindness (chat refused included) and a
/// pause of automation.
pub fn banners(status: &Status, now: Millis) -> Vec<Banner> {
    let mut out: Vec<Banner> = status
        .blind
        .iter()
        .map(|b| Banner {
            level: Level::Bad,
            text: format!(
                "Blind: {} since {} ({} ago): {}. Watch it by hand until this goes.",
                b.what,
                utc(b.since),
                duration(now - b.since),
                b.why
            ),
        })
        .collect();
    if let Some(p) = &status.paused {
        out.push(Banner {
            level: Level::Warn,
            text: format!(
                "Automation is paused by {} since {}{}: alerts are shown, no runbook starts.",
                p.by,
                utc(p.since),
                if p.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", p.reason)
                }
            ),
        })
    }
    out
}

/// What the pages show that changes only when something happens, never
/// with the passing of time (the `ago`s and countdowns): a live page is
/// redrawn when this changes. `said` is the newest chat message's number,
/// which grows with every run, step, alert and action.
pub fn moment(status: Option<&Status>, said: i64) -> u64 {
    let mut h = crate::labels::Fnv::new();
    let mut eat = |s: &str| {
        h.eat(s.as_bytes());
        h.eat(&[0]);
    };
    eat(&said.to_string());
    if let Some(s) = status {
        if let Some(p) = &s.paused {
            eat(&p.by);
            eat(&p.since.to_string());
        }
        for a in &s.firing {
            eat(&a.fingerprint);
            eat(a.silenced_by.as_deref().unwrap_or("-"));
            eat(a.acked.as_ref().map_or("-", |k| k.by.as_str()));
            eat(&a.summary);
        }
        for p in s.pending.iter() {
            eat(&p.name);
            eat(&p.labels.fingerprint().to_string());
        }
        for w in &s.waiting {
            eat(&w.run);
        }
        for (_, _, run) in &s.running {
            eat(run);
        }
        for x in &s.silences {
            eat(&x.id);
        }
        for b in &s.blind {
            eat(&b.what);
        }
    }
    h.finish()
}

/// How long the oldest undelivered chat message may wait before every
/// page says chat is behind: longer than any pacing or single retry.
pub const CHAT_LAG_MS: Millis = 60_000;

/// A banner when chat has not taken what the bot wrote (a 429 storm, an
/// outage): `depth` messages wait, the oldest written at `oldest`.
pub fn chat_behind(depth: i64, oldest: Millis, now: Millis) -> Option<Banner> {
    (now - oldest >= CHAT_LAG_MS).then(|| Banner {
        level: Level::Warn,
        text: format!(
            "Chat is behind: {depth} message(s) not delivered yet, the oldest written {} ago. What chat has not shown is here; act here if chat is slow.",
            duration(now - oldest)
        ),
    })
}

fn labels_text(labels: impl IntoIterator<Item = (String, String)>) -> String {
    let parts: Vec<String> = labels
        .into_iter()
        .filter(|(k, _)| k != "alertname")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn incident_link(id: &str) -> String {
    format!("<a href=\"/incidents/{}\">{}</a>", esc(&seg(id)), esc(id))
}

fn run_link(id: &str) -> String {
    format!("<a href=\"/runs/{}\">{}</a>", esc(&seg(id)), esc(id))
}

/// What the home page shows besides the control loop's status, read
/// from the store and the checklist runner.
#[derive(Default)]
pub struct Home<'a> {
    /// The newest incidents.
    pub recent: &'a [IncidentSummary],
    /// The newest checklist run, with its slot.
    pub checklist: Option<&'a (String, crate::checklist::state::RunState)>,
    /// Scheduled checklist runs still to come.
    pub ahead: &'a [crate::preflight::task::Upcoming],
    /// The newest step of each run in progress.
    pub steps: &'a [StepRecord],
    /// The state of each recent incident's card, by incident.
    pub cards: &'a [(String, crate::chat::card::Status)],
    /// Who leads, where there are replicas.
    pub leader: Option<&'a str>,
}

/// `GET /`: the night at a glance.
pub fn now_page(status: &Status, home: &Home<'_>, now: Millis, acts: Option<&Acts>) -> String {
    let Home {
        recent,
        checklist,
        ahead,
        steps,
        cards,
        leader,
    } = *home;
    let mut out = String::new();
    let act =
        |label: &str, command: &str| acts.map(|a| a.button(label, command)).unwrap_or_default();
    let automation = match &status.paused {
        Some(_) => "<span class=\"warn\">paused</span>",
        None => "<span class=\"ok\">on</span>",
    };
    let sight = if status.blind.is_empty() {
        "<span class=\"ok\">sees every source; chat is delivering</span>".to_owned()
    } else {
        format!(
            "<span class=\"bad\">blind to {} thing(s)</span>",
            status.blind.len()
        )
    };
    let _ = write!(
        out,
        "<p>Automation: {automation} · {sight}{}</p>",
        leader.map(|l| format!(" · {}", esc(l))).unwrap_or_default()
    );
    out.push_str(&match &status.paused {
        Some(_) => act("Resume automation", "resume"),
        None => act("Pause automation", "pause"),
    });

    let _ = write!(out, "<h2>Incidents</h2>");
    if recent.is_empty() {
        out.push_str("<p class=\"muted\">no incidents yet.</p>");
    } else {
        // Beside each, its card's state as chat was last told it.
        let rows: Vec<String> = incident_rows(recent, Some(status))
            .into_iter()
            .zip(recent)
            .map(|(row, i)| {
                let card = match cards.iter().find(|(id, _)| *id == i.incident) {
                    Some((_, st)) => format!("{} {}", st.icon(), st.word()),
                    None => "–".to_owned(),
                };
                format!("{row}<td>{card}</td>")
            })
            .collect();
        let mut head = INCIDENT_HEAD.to_vec();
        head.push("in chat");
        out.push_str(&table("the newest incidents", &head, &rows));
        out.push_str("<p><a href=\"/incidents\">Every incident</a></p>");
    }
    if !ahead.is_empty() {
        let rows: Vec<String> = ahead
            .iter()
            .take(AHEAD_ROWS)
            .map(|u| {
                format!(
                    "<td>{}</td><td>{}</td><td class=\"when\">{} (in {})</td>",
                    esc(&u.checklist),
                    esc(&u.label),
                    utc(u.at),
                    duration(u.at - now)
                )
            })
            .collect();
        section_of(
            &mut out,
            "Checklists ahead",
            "",
            &["checklist", "slot", "runs at"],
            rows,
            ahead.len(),
            Some(""),
        );
    }
    if let Some((slot, r)) = checklist {
        out.push_str("<h2>The last checklist</h2>");
        out.push_str(&table(
            "the last checklist run",
            &CHECKLIST_HEAD,
            &[checklist_row(slot, r, acts)],
        ));
        out.push_str("<p><a href=\"/checklists\">Every checklist run</a></p>");
    }

    let firing: Vec<String> = status
        .firing
        .iter()
        .take(PAGE_ROWS)
        .map(|a| firing_row(a, now, acts))
        .collect();
    section_of(
        &mut out,
        "Firing",
        "no alert is firing",
        &FIRING_HEAD,
        firing,
        status.firing.len(),
        Some("/alerts"),
    );

    let pending: Vec<String> = status
        .pending
        .iter()
        .take(PAGE_ROWS)
        .map(|p| pending_row(p, now))
        .collect();
    section_of(
        &mut out,
        "Pending",
        "no alert is waiting out its rule's `for`",
        &PENDING_HEAD,
        pending,
        status.pending.len(),
        Some("/alerts/pending"),
    );

    let waiting: Vec<String> = status
        .waiting
        .iter()
        .take(PAGE_ROWS)
        .map(|w| {
            format!(
                "<td>{}</td><td>{}</td><td>{}</td><td class=\"when\">{} (in {})</td><td>{}{}</td>",
                run_link(&w.run),
                esc(&w.what),
                esc(&w.who),
                utc(w.deadline),
                duration(w.deadline - now),
                act("Approve", &format!("approve {}", w.run)),
                act("Deny", &format!("deny {}", w.run)),
            )
        })
        .collect();
    section_of(
        &mut out,
        "Waiting for approval",
        "no run waits for a person",
        &["run", "what", "who may answer", "deadline", ""],
        waiting,
        status.waiting.len(),
        Some("/runs"),
    );

    let running: Vec<String> = status
        .running
        .iter()
        .take(PAGE_ROWS)
        .map(|(runbook, key, run)| {
            let step = match steps.iter().find(|st| st.run_id == *run) {
                Some(st) => format!(
                    "<code>{}</code> {} ({} ago)",
                    esc(&st.step_id),
                    esc(st.state.as_str()),
                    duration(now - st.started_at)
                ),
                None => "starting".to_owned(),
            };
            format!(
                "<td>{}</td><td><code>{}</code></td><td>{}</td><td>{step}</td><td>{}</td>",
                esc(runbook),
                esc(key),
                run_link(run),
                act("Abort", &format!("abort {run}")),
            )
        })
        .collect();
    section_of(
        &mut out,
        "Runs in progress",
        "no runbook is running",
        &["runbook", "concurrency key", "run", "step", ""],
        running,
        status.running.len(),
        Some("/runs"),
    );

    let silences: Vec<String> = status
        .silences
        .iter()
        .take(PAGE_ROWS)
        .map(|s| silence_row(s, now, acts))
        .collect();
    section_of(
        &mut out,
        "Silences",
        "no silence is active",
        &SILENCE_HEAD,
        silences,
        status.silences.len(),
        Some(""),
    );
    if let Some(a) = acts {
        out.push_str(&a.command_box());
    }
    out
}

fn section(out: &mut String, title: &str, none: &str, head: &[&str], rows: Vec<String>) {
    let total = rows.len();
    section_of(out, title, none, head, rows, total, Some(""));
}

/// A section that shows `rows`, the first of `total`: the rest are at
/// `more` (a page of their own, or only counted when it is empty); `None`
/// when a pager below says where the rest are.
fn section_of(
    out: &mut String,
    title: &str,
    none: &str,
    head: &[&str],
    rows: Vec<String>,
    total: usize,
    more: Option<&str>,
) {
    let _ = write!(out, "<h2>{} ({total})</h2>", esc(title));
    if rows.is_empty() {
        let _ = write!(out, "<p class=\"muted\">{}.</p>", esc(none));
        return;
    }
    out.push_str(&table(title, head, &rows));
    let Some(more) = more else {
        return;
    };
    if total > rows.len() {
        let _ = write!(out, "<p>Showing the first {} of {total}", rows.len());
        if !more.is_empty() {
            let _ = write!(out, "; <a href=\"{more}\">every one, a page at a time</a>");
        }
        out.push_str(".</p>");
    }
}

/// How many scheduled checklist runs the home page lists.
const AHEAD_ROWS: usize = 5;

const FIRING_HEAD: [&str; 6] = ["alert", "summary", "value", "since", "incident", "state"];
const PENDING_HEAD: [&str; 4] = ["alert", "summary", "condition since", "fires"];

fn firing_row(a: &crate::control::FiringAlert, now: Millis, acts: Option<&Acts>) -> String {
    let id = &a.fingerprint[..8.min(a.fingerprint.len())];
    let state = match (&a.silenced_by, &a.acked) {
        (Some(s), _) => format!("silenced ({})", esc(s)),
        (None, Some(k)) => format!("acked by {}", esc(&k.by)),
        (None, None) => format!(
            "<strong>firing</strong> {}",
            acts.map(|x| x.button("Ack", &format!("ack {id}")))
                .unwrap_or_default()
        ),
    };
    format!(
        "<td><strong>{}</strong><br><code>{}</code></td><td>{}</td><td>{}</td><td class=\"when\">{} ({} ago)</td><td>{}</td><td>{state}</td>",
        esc(&a.name),
        esc(&labels_text(a.labels.clone())),
        esc(&a.summary),
        if a.value.is_finite() {
            esc(&crate::human::value(a.value))
        } else {
            "–".into()
        },
        utc(a.since),
        duration(now - a.since),
        incident_link(&a.incident),
    )
}

fn pending_row(p: &crate::rules::PendingAlert, now: Millis) -> String {
    let labels = p.labels.iter().map(|(k, v)| (k.to_owned(), v.to_owned()));
    format!(
        "<td><strong>{}</strong><br><code>{}</code></td><td>{}</td><td class=\"when\">{}</td><td class=\"when\">{} ({})</td>",
        esc(&p.name),
        esc(&labels_text(labels)),
        esc(&p.summary),
        utc(p.active_at),
        if p.fires_at > now {
            format!("in {} if it holds", duration(p.fires_at - now))
        } else {
            "at the next evaluation".to_owned()
        },
        utc(p.fires_at),
    )
}

/// `GET /alerts`: every firing alert, oldest first, a page at a time.
pub fn alerts_page(
    list: &Paged<'_, std::sync::Arc<crate::control::FiringAlert>>,
    now: Millis,
    acts: Option<&Acts>,
) -> String {
    let mut out = String::new();
    let rows = list.rows.iter().map(|a| firing_row(a, now, acts)).collect();
    section_of(
        &mut out,
        "Firing",
        "no alert is firing",
        &FIRING_HEAD,
        rows,
        list.total,
        None,
    );
    pager(&mut out, list, "/alerts");
    out.push_str("<p><a href=\"/alerts/pending\">Pending alerts</a></p>");
    out
}

/// `GET /alerts/pending`: every alert waiting out its `for`, a page at a
/// time.
pub fn pending_page(list: &Paged<'_, crate::rules::PendingAlert>, now: Millis) -> String {
    let mut out = String::new();
    let rows = list.rows.iter().map(|p| pending_row(p, now)).collect();
    section_of(
        &mut out,
        "Pending",
        "no alert is waiting out its rule's `for`",
        &PENDING_HEAD,
        rows,
        list.total,
        None,
    );
    pager(&mut out, list, "/alerts/pending");
    out.push_str("<p><a href=\"/alerts\">Firing alerts</a></p>");
    out
}

/// One page of a list, and the links to the others.
pub struct Paged<'a, T> {
    pub rows: &'a [T],
    pub page: usize,
    pub pages: usize,
    pub total: usize,
}

/// For a list of `total` read a page at a time: the page to show (the
/// `asked`, within range), how many pages there are, and how many rows
/// come before it.
pub fn page_of(total: usize, asked: usize) -> (usize, usize, i64) {
    let pages = total.div_ceil(PAGE_ROWS).max(1);
    let page = asked.clamp(1, pages);
    (page, pages, ((page - 1) * PAGE_ROWS) as i64)
}

/// The `page`th (from 1) slice of `all`, at most [`PAGE_ROWS`] long.
pub fn paged<T>(all: &[T], page: usize) -> Paged<'_, T> {
    let pages = all.len().div_ceil(PAGE_ROWS).max(1);
    let page = page.clamp(1, pages);
    let start = (page - 1) * PAGE_ROWS;
    let end = (start + PAGE_ROWS).min(all.len());
    Paged {
        rows: &all[start.min(end)..end],
        page,
        pages,
        total: all.len(),
    }
}

/// Links to the pages before and after `p`, at `base` (a path, perhaps
/// with a filter's query already; its values URL-encoded).
fn pager<T>(out: &mut String, p: &Paged<'_, T>, base: &str) {
    if p.pages <= 1 {
        return;
    }
    let _ = write!(
        out,
        "<nav aria-label=\"pages\"><p>Page {} of {} ({} in all)",
        p.page, p.pages, p.total
    );
    let sep = if base.contains('?') { "&amp;" } else { "?" };
    let base = esc(base);
    if p.page > 1 {
        let _ = write!(
            out,
            " · <a href=\"{base}{sep}page={}\">newer</a>",
            p.page - 1
        );
    }
    if p.page < p.pages {
        let _ = write!(
            out,
            " · <a href=\"{base}{sep}page={}\">older</a>",
            p.page + 1
        );
    }
    out.push_str("</p></nav>");
}

/// One field of a list's filter form; empty means any.
pub enum Field<'a> {
    /// One of `options` (what the store has seen, so nobody guesses).
    Choice {
        name: &'a str,
        options: Vec<String>,
        chosen: Option<&'a str>,
    },
    /// Text, matched as the list says.
    Text {
        name: &'a str,
        value: Option<&'a str>,
    },
}

impl Field<'_> {
    fn name(&self) -> &str {
        match self {
            Field::Choice { name, .. } | Field::Text { name, .. } => name,
        }
    }

    fn value(&self) -> Option<&str> {
        match self {
            Field::Choice { chosen, .. } => *chosen,
            Field::Text { value, .. } => *value,
        }
    }
}

/// A list's filters: a GET form, so a filtered list is an address to
/// share, and the pager keeps the filter.
pub struct Filters<'a> {
    /// The list's path.
    pub action: &'a str,
    pub fields: Vec<Field<'a>>,
}

impl Filters<'_> {
    /// Whether any field narrows the list.
    pub fn narrows(&self) -> bool {
        self.fields.iter().any(|f| f.value().is_some())
    }

    /// The list's address with the filter set (values URL-encoded).
    pub fn base(&self) -> String {
        let set: Vec<String> = self
            .fields
            .iter()
            .filter_map(|f| f.value().map(|v| format!("{}={}", f.name(), seg(v))))
            .collect();
        if set.is_empty() {
            self.action.to_owned()
        } else {
            format!("{}?{}", self.action, set.join("&"))
        }
    }

    fn form(&self) -> String {
        let mut out = format!(
            "<form class=\"filters\" method=\"get\" action=\"{}\" role=\"search\" aria-label=\"filter\">",
            esc(self.action)
        );
        for f in &self.fields {
            let id = format!("filter-{}", f.name());
            match f {
                Field::Choice {
                    name,
                    options,
                    chosen,
                } => {
                    let _ = write!(
                        out,
                        "<label for=\"{id}\">{name}</label><select id=\"{id}\" name=\"{name}\"><option value=\"\">any</option>"
                    );
                    // A value from the address that the store has not
                    // seen is still shown as what is asked for.
                    let unseen = chosen.filter(|c| !options.iter().any(|o| o == c));
                    for o in options.iter().map(String::as_str).chain(unseen) {
                        let _ = write!(
                            out,
                            "<option{}>{}</option>",
                            if Some(o) == *chosen { " selected" } else { "" },
                            esc(o)
                        );
                    }
                    out.push_str("</select>");
                }
                Field::Text { name, value } => {
                    let _ = write!(
                        out,
                        "<label for=\"{id}\">{name}</label><input id=\"{id}\" name=\"{name}\" value=\"{}\" maxlength=\"{MAX_FILTER}\" autocomplete=\"off\">",
                        esc(value.unwrap_or(""))
                    );
                }
            }
        }
        out.push_str("<button>Filter</button>");
        if self.narrows() {
            let _ = write!(out, "<a href=\"{}\">show all</a>", esc(self.action));
        }
        out.push_str("</form>");
        out
    }
}

/// A filtered list: its filter form, one page of `rows` under `title`
/// (`none`: what an empty list says, unfiltered and filtered), and the
/// pager, which keeps the filter.
fn filtered<T>(
    filters: &Filters<'_>,
    list: &Paged<'_, T>,
    title: &str,
    none: [&str; 2],
    head: &[&str],
    rows: Vec<String>,
) -> String {
    let mut out = filters.form();
    let none = none[usize::from(filters.narrows())];
    section_of(&mut out, title, none, head, rows, list.total, None);
    pager(&mut out, list, &filters.base());
    out
}

/// The longest value a filter field takes, in bytes.
pub const MAX_FILTER: usize = 200;

const INCIDENT_HEAD: [&str; 5] = [
    "incident",
    "first entry",
    "last entry",
    "entries",
    "firing now",
];

/// Incidents as lists show them: from their timelines' ends and lengths
/// (no timeline is read for a list), and what fires in each now when the
/// status is known (a follower does not know).
fn incident_rows(rows: &[IncidentSummary], status: Option<&Status>) -> Vec<String> {
    rows.iter()
        .map(|i| {
            let firing = match status {
                None => "–".to_owned(),
                Some(s) => match s.firing.iter().filter(|a| a.incident == i.incident).count() {
                    0 => "nothing".to_owned(),
                    n => format!("<strong>{n} alert(s)</strong>"),
                },
            };
            format!(
                "<td>{}</td><td class=\"when\">{}</td><td class=\"when\">{}</td><td>{}</td><td>{firing}</td>",
                incident_link(&i.incident),
                esc(&super::html::day_and_time(i.first)),
                esc(&super::html::day_and_time(i.last)),
                i.entries,
            )
        })
        .collect()
}

/// A checklist run as lists show it: where it stands (GO, NO-GO and
/// why, checking, waiting for people), and each sign-off still waited
/// for with its button (the checklist says who may sign; the command
/// checks).
pub fn checklist_row(
    slot: &str,
    r: &crate::checklist::state::RunState,
    acts: Option<&Acts>,
) -> String {
    use crate::checklist::Verdict;
    use crate::checklist::state::Phase;
    let stands = match r.phase() {
        Phase::Checking => "checking".to_owned(),
        Phase::AwaitingSignOff => "waiting for sign-off".to_owned(),
        Phase::Done(Verdict::Go) => "<strong class=\"ok\">GO</strong>".to_owned(),
        Phase::Done(Verdict::NoGo) => format!(
            "<strong class=\"bad\">NO-GO</strong>: {}",
            esc(&r.reasons().join(", "))
        ),
    };
    let signoffs: Vec<String> = r
        .waiting_signoffs()
        .into_iter()
        .map(|(check, roles)| {
            let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            format!(
                "{} (a {}) {}",
                esc(check),
                esc(&roles.join(" or ")),
                acts.map(|a| a.button("Sign off", &format!("signoff {} {}", r.id, word(check))))
                    .unwrap_or_default()
            )
        })
        .collect();
    format!(
        "<td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"when\">{}</td><td>{}</td><td>{stands}</td><td>{}</td>",
        esc(&r.checklist),
        esc(&r.id),
        esc(slot),
        esc(&super::html::day_and_time(r.started_at)),
        esc(&r.started_by),
        signoffs.join("<br>")
    )
}

/// `s` as one word of a command line: quoted when it holds a space.
fn word(s: &str) -> String {
    if s.contains(char::is_whitespace) || s.is_empty() {
        format!("\"{}\"", s.replace('"', ""))
    } else {
        s.to_owned()
    }
}

const CHECKLIST_HEAD: [&str; 7] = [
    "checklist",
    "run",
    "slot",
    "started",
    "by",
    "verdict",
    "sign-offs waited for",
];

/// `GET /checklists`: checklist runs, newest first, those the filters
/// let through.
pub fn checklists_page(
    list: &Paged<'_, (String, crate::checklist::state::RunState)>,
    acts: Option<&Acts>,
    filters: &Filters<'_>,
) -> String {
    let rows = list
        .rows
        .iter()
        .map(|(slot, r)| checklist_row(slot, r, acts))
        .collect();
    filtered(
        filters,
        list,
        "Checklist runs",
        ["no checklist has run yet", "no checklist run matches"],
        &CHECKLIST_HEAD,
        rows,
    )
}

const SILENCE_HEAD: [&str; 6] = ["id", "matchers", "by", "ends", "comment", ""];

fn silence_row(s: &crate::control::SilenceView, now: Millis, acts: Option<&Acts>) -> String {
    format!(
        "<td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td class=\"when\">{} (in {})</td><td>{}</td><td>{}</td>",
        esc(&s.id),
        esc(&s.matchers),
        esc(&s.by),
        utc(s.ends_at),
        duration(s.ends_at - now),
        esc(&s.comment),
        acts.map(|a| a.button("Unsilence", &format!("unsilence {}", s.id)))
            .unwrap_or_default()
    )
}

/// Whether silence `s` has `text` in its matchers, author, comment or
/// id, ignoring case: what the silences list's filter matches.
pub fn silence_has(s: &crate::control::SilenceView, text: &str) -> bool {
    let text = text.to_lowercase();
    [&s.matchers, &s.by, &s.comment, &s.id]
        .iter()
        .any(|f| f.to_lowercase().contains(&text))
}

/// `GET /silences`: the silences in force that the filters let through,
/// each with its way out.
pub fn silences_page(
    list: &Paged<'_, crate::control::SilenceView>,
    now: Millis,
    acts: Option<&Acts>,
    filters: &Filters<'_>,
) -> String {
    let rows = list
        .rows
        .iter()
        .map(|s| silence_row(s, now, acts))
        .collect();
    let mut out = filtered(
        filters,
        list,
        "Silences",
        ["no silence is active", "no active silence matches"],
        &SILENCE_HEAD,
        rows,
    );
    if let Some(a) = acts {
        out.push_str("<p>A new silence is a command: <code>silence alertname=\"RoomFilling\" room=\"main\" 30m \"why\"</code></p>");
        out.push_str(&a.command_box());
    }
    out
}

/// `GET /incidents`: newest first; how each went is on its own page.
pub fn incidents_page(list: &Paged<'_, IncidentSummary>, status: Option<&Status>) -> String {
    let mut out = String::new();
    let rows = incident_rows(list.rows, status);
    section_of(
        &mut out,
        "Incidents",
        "no incidents yet",
        &INCIDENT_HEAD,
        rows,
        list.total,
        None,
    );
    pager(&mut out, list, "/incidents");
    out
}

/// What chat has of an incident, for its page: the newest card and the
/// charts (outbox number, title).
#[derive(Default)]
pub struct InChat {
    pub card: Option<Card>,
    pub charts: Vec<(i64, String)>,
}

/// The incident's card as chat was last told it: the same parts as the
/// Slack blocks ([`crate::chat::blocks`]), and its actions as the
/// console's buttons for someone who may act.
pub fn card_html(c: &Card, acts: Option<&Acts>) -> String {
    let mut out = format!(
        "<section class=\"card\" aria-label=\"the card in chat\"><h3>{} {} · incident {}</h3>",
        c.status.icon(),
        c.status.word(),
        esc(&c.incident)
    );
    if let Some(a) = &c.audience {
        let _ = write!(out, "<p class=\"muted\">👥 {}</p>", esc(&a.line()));
    }
    for b in &c.blind {
        let _ = write!(
            out,
            "<p class=\"bad\">⚠️ <strong>firebreak is blind:</strong> {} since {} ({}); check it by hand</p>",
            esc(&b.what),
            utc(b.since),
            esc(&crate::human::clip(&b.why, 200))
        );
    }
    if !c.shown().is_empty() {
        out.push_str("<ul>");
        for a in c.shown() {
            let _ = write!(
                out,
                "<li><strong>{}</strong> {}",
                esc(&a.name),
                if a.firing { "firing" } else { "resolved" }
            );
            if let Some(sev) = &a.severity {
                let _ = write!(out, " · <code>{}</code>", esc(sev));
            }
            if !a.value.is_nan() {
                let _ = write!(
                    out,
                    " · value <strong>{}</strong>",
                    esc(&crate::chat::card::human_value(a.value))
                );
            }
            let _ = write!(out, " · since {}", utc(a.since));
            if !a.labels.is_empty() {
                out.push_str("<br>");
                for (k, v) in &a.labels {
                    let _ = write!(out, "<code>{}={}</code> ", esc(k), esc(v));
                }
            }
            if let Some(summary) = &a.summary {
                let _ = write!(out, "<br>{}", esc(summary));
            }
            out.push_str("</li>");
        }
        out.push_str("</ul>");
    }
    if c.more() > 0 {
        let _ = write!(
            out,
            "<p>… and {} more alerts; <a href=\"/alerts\">every alert</a></p>",
            c.more()
        );
    }
    if let Some(r) = &c.run {
        let _ = write!(
            out,
            "<p><strong>Runbook</strong> <code>{}</code> · run {}<br><strong>State:</strong> {}",
            esc(&r.runbook),
            run_link(&r.id),
            esc(r.state.as_str())
        );
        if let Some((step, how)) = &r.last_step {
            let _ = write!(out, " · last step <code>{}</code> {how}", esc(step));
        }
        if let Some(w) = &r.waiting {
            let _ = write!(
                out,
                "<br>✋ waiting for approval of <code>{}</code>",
                esc(w)
            );
        }
        out.push_str("</p>");
    }
    if let Some(by) = &c.acked_by {
        let _ = write!(out, "<p class=\"muted\">Acknowledged by {}</p>", esc(by));
    }
    let actions = c.actions();
    match acts {
        Some(a) if !actions.is_empty() => {
            out.push_str("<p>");
            for x in &actions {
                out.push_str(&a.button(&x.label, &x.command));
            }
            out.push_str("</p>");
        }
        None if !actions.is_empty() => {
            let labels: Vec<String> = actions.iter().map(|x| esc(&x.label)).collect();
            let _ = write!(
                out,
                "<p class=\"muted\">Buttons in chat: {}</p>",
                labels.join(" · ")
            );
        }
        _ => {}
    }
    let _ = write!(
        out,
        "<p class=\"muted\">As of {}</p></section>",
        utc(c.updated_at)
    );
    out
}

/// `GET /incidents/ID`: the post-incident report as
/// `firebreak timeline --markdown` writes it (figures, audience, what
/// fired, what was done, what people did), the card and charts as chat
/// has them, then the timeline, paged.
pub fn incident_page(
    r: &Review,
    entries: &Paged<'_, crate::incident::TimelineEntry>,
    chat: &InChat,
    acts: Option<&Acts>,
) -> String {
    let mut out = String::new();
    if let Some(c) = &chat.card {
        out.push_str("<h2>In chat</h2>");
        out.push_str(&card_html(c, acts));
    }
    if !chat.charts.is_empty() {
        out.push_str("<h2>Charts</h2>");
        for (seq, title) in &chat.charts {
            let _ = write!(
                out,
                "<figure><img src=\"/incidents/{}/charts/{seq}\" alt=\"chart: {t}\" width=\"{w}\" height=\"{h}\"></figure>",
                esc(&seg(&r.incident)),
                t = esc(title),
                w = crate::chat::chart::WIDTH,
                h = crate::chat::chart::HEIGHT
            );
        }
    }
    out.push_str("<article class=\"review\">");
    out.push_str(&super::markdown::to_html(
        &r.markdown_summary(&super::html::day_and_time, PAGE_ROWS),
    ));
    out.push_str("</article>");
    let _ = write!(
        out,
        "<p><a href=\"/runs?incident={}\">Every run for this incident</a></p>",
        esc(&seg(&r.incident))
    );
    let rows: Vec<String> = entries
        .rows
        .iter()
        .map(|e| {
            let run = e.about.run.as_deref().map(run_link).unwrap_or_default();
            format!(
                "<td class=\"when\">{}</td><td>{}</td><td>{}</td><td>{}{}</td>",
                utc(e.at),
                esc(e.kind.as_str()),
                esc(&e.by.label()),
                esc(&e.text),
                if run.is_empty() {
                    String::new()
                } else {
                    format!(" · {run}")
                }
            )
        })
        .collect();
    section(
        &mut out,
        "Timeline",
        "nothing on the timeline",
        &["when", "what", "who", "text"],
        rows,
    );
    pager(
        &mut out,
        entries,
        &format!("/incidents/{}", seg(&r.incident)),
    );
    out
}

/// `GET /runs`: newest first, those the filters let through.
pub fn runs_page(list: &Paged<'_, RunRecord>, filters: &Filters<'_>) -> String {
    let rows = list.rows.iter().map(run_row).collect();
    filtered(
        filters,
        list,
        "Runs",
        ["no runs yet", "no run matches"],
        &RUN_HEAD,
        rows,
    )
}

const RUN_HEAD: [&str; 6] = ["run", "runbook", "incident", "state", "started", "error"];

fn run_row(r: &RunRecord) -> String {
    format!(
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"when\">{}</td><td>{}</td>",
        run_link(&r.id),
        esc(&r.runbook),
        incident_link(&r.incident),
        esc(r.state.as_str()),
        esc(&super::html::day_and_time(r.started_at)),
        esc(r.error.as_deref().unwrap_or("")),
    )
}

/// `GET /runs/ID`: the run, then each step with its output and error.
pub fn run_page(r: &RunRecord, steps: &[StepRecord], acts: Option<&Acts>) -> String {
    let mut out = String::new();
    out.push_str(&table("the run", &RUN_HEAD, &[run_row(r)]));
    if let Some(a) = acts {
        use crate::run_state::{Going, RunState};
        let buttons = match r.state {
            RunState::Going(Going::AwaitingApproval) => format!(
                "{}{}{}",
                a.button("Approve", &format!("approve {}", r.id)),
                a.button("Deny", &format!("deny {}", r.id)),
                a.button("Abort", &format!("abort {}", r.id))
            ),
            RunState::Going(_) => a.button("Abort", &format!("abort {}", r.id)),
            _ => String::new(),
        };
        if !buttons.is_empty() {
            let _ = write!(out, "<p>{buttons}</p>");
        }
    }
    let rows: Vec<String> = steps
        .iter()
        .map(|s| {
            format!(
                "<td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"when\">{}</td><td><code>{}</code></td><td>{}</td>",
                esc(&s.step_id),
                esc(s.state.as_str()),
                s.attempts,
                s.finished_at
                    .map(|f| duration(f - s.started_at))
                    .unwrap_or_else(|| "running".into()),
                esc(&crate::human::clip(s.output_json.as_deref().unwrap_or(""), 2000)),
                esc(s.error.as_deref().unwrap_or("")),
            )
        })
        .collect();
    section(
        &mut out,
        "Steps",
        "no step has started",
        &["step", "state", "tries", "took", "output", "error"],
        rows,
    );
    out
}

/// `GET /signin`: one field, for the token `firebreak console-token add`
/// printed; `problem` says why the last one was not taken.
pub fn signin_form(problem: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(p) = problem {
        let _ = write!(out, "<p class=\"banner bad\" role=\"alert\">{}</p>", esc(p));
    }
    out.push_str(
        "<form class=\"cmd\" method=\"post\" action=\"/signin\">\
<label for=\"token\">Your console token (from <code>firebreak console-token add</code>):</label>\
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required autofocus>\
<button>Sign in</button></form>",
    );
    out
}

/// What a command sent from the console answered, and the way back.
pub fn answer(line: &str, reply: &str, back: &str, acts: Option<&Acts>) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<p>You sent <code>{}</code>; firebreak answered:</p><pre class=\"reply\" role=\"status\">{}</pre><p><a href=\"{}\">Back</a></p>",
        esc(line),
        esc(reply),
        esc(back)
    );
    if let Some(a) = acts {
        out.push_str(&a.command_box());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::control::{FiringAlert, Status};
    use crate::roles::Role;

    const NOW: Millis = 1_684_965_660_000;

    fn now_page_t(
        s: &Status,
        recent: &[IncidentSummary],
        leader: Option<&str>,
        now: Millis,
        acts: Option<&Acts>,
    ) -> String {
        let home = Home {
            recent,
            leader,
            ..Home::default()
        };
        now_page(s, &home, now, acts)
    }

    fn status(label_value: &str) -> Status {
        Status {
            paused: None,
            running: vec![("cap".into(), "main".into(), "cap-1".into())],
            firing: vec![Arc::new(FiringAlert {
                fingerprint: "0123456789abcdef".into(),
                name: "SpeakerFeedback".into(),
                group: "g".into(),
                incident: "../../admin".into(),
                labels: BTreeMap::from([("room".into(), label_value.into())]),
                summary: "<img src=x onerror=alert(1)>".into(),
                value: 0.93,
                since: NOW - 65_000,
                acked: None,
                silenced_by: None,
            })],
            waiting: Vec::new(),
            blind: Vec::new(),
            pending: Arc::new(vec![crate::rules::PendingAlert {
                name: "RoomFilling".into(),
                group: "g".into(),
                labels: crate::labels::Labels::new().with("alertname", "RoomFilling"),
                summary: "filling".into(),
                value: 0.91,
                active_at: NOW - 20_000,
                fires_at: NOW + 40_000,
            }]),
            silences: Vec::new(),
            incident: None,
        }
    }

    #[test]
    fn alert_data_cannot_add_markup_or_leave_the_console() {
        let page = now_page_t(&status("\"><script>x</script>"), &[], None, NOW, None);
        assert!(
            !page.contains("<script>") && !page.contains("<img"),
            "{page}"
        );
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(
            page.contains("{room=&quot;&gt;&lt;script&gt;x&lt;/script&gt;}"),
            "{page}"
        );
        // The incident link is one path segment, whatever the label says.
        assert!(
            page.contains("href=\"/incidents/..%2F..%2Fadmin\""),
            "{page}"
        );
    }

    /// Issue 24: runs in progress with their current step.
    #[test]
    fn runs_in_progress_show_their_current_step() {
        let s = status("main");
        let step = StepRecord {
            run_id: "cap-1".into(),
            step_id: "<cap>".into(),
            state: crate::run_state::StepState::Running,
            attempts: 1,
            started_at: NOW - 5_000,
            finished_at: None,
            output_json: None,
            error: None,
        };
        let page = now_page(
            &s,
            &Home {
                steps: std::slice::from_ref(&step),
                ..Home::default()
            },
            NOW,
            None,
        );
        assert!(
            page.contains("<td><code>&lt;cap&gt;</code> running (5s ago)</td>"),
            "{page}"
        );
        let before = now_page(&s, &Home::default(), NOW, None);
        assert!(before.contains("<td>starting</td>"), "{before}");
    }

    #[test]
    fn a_pending_alert_counts_down_to_its_for() {
        let page = now_page_t(&status("main"), &[], None, NOW, None);
        assert!(page.contains("in 40s if it holds"), "{page}");
        let later = now_page_t(&status("main"), &[], None, NOW + 60_000, None);
        assert!(later.contains(">at the next evaluation ("), "{later}");
    }

    #[test]
    fn buttons_follow_the_role_and_carry_the_session_token() {
        let acts = |role| Acts {
            role,
            csrf: "c0ffee".into(),
            back: "/".into(),
        };
        let commander = now_page_t(
            &status("main"),
            &[],
            None,
            NOW,
            Some(&acts(Role::Commander)),
        );
        for part in [
            "value=\"pause\">Pause automation",
            "value=\"ack 01234567\">Ack",
            "value=\"abort cap-1\">Abort",
            "name=\"csrf\" value=\"c0ffee\"",
            "<label for=\"command\">",
        ] {
            assert!(commander.contains(part), "{part} not in {commander}");
        }
        let responder = now_page_t(
            &status("main"),
            &[],
            None,
            NOW,
            Some(&acts(Role::Responder)),
        );
        assert!(!responder.contains("Pause automation") && responder.contains(">Abort<"));
        let viewer = now_page_t(&status("main"), &[], None, NOW, Some(&acts(Role::Viewer)));
        assert!(!viewer.contains(">Abort<") && !viewer.contains(">Ack<"));
    }

    #[test]
    fn chat_that_lags_is_said_and_a_short_wait_is_not() {
        assert_eq!(chat_behind(3, NOW - 5_000, NOW), None);
        let b = chat_behind(42, NOW - 180_000, NOW).unwrap();
        assert_eq!(b.level, Level::Warn);
        assert!(
            b.text.starts_with(
                "Chat is behind: 42 message(s) not delivered yet, the oldest written 3m ago."
            ),
            "{}",
            b.text
        );
    }

    #[test]
    fn a_storm_is_drawn_a_page_at_a_time() {
        let mut s = status("main");
        let one = s.firing[0].clone();
        s.firing = (0..10_000)
            .map(|i| {
                Arc::new(FiringAlert {
                    fingerprint: format!("{i:016x}"),
                    ..(*one).clone()
                })
            })
            .collect();
        let home = now_page_t(&s, &[], None, NOW, None);
        assert!(home.contains("<h2>Firing (10000)</h2>"), "{home}");
        assert_eq!(
            home.matches("<strong>SpeakerFeedback</strong>").count(),
            PAGE_ROWS
        );
        assert!(home.contains(
            "Showing the first 50 of 10000; <a href=\"/alerts\">every one, a page at a time</a>."
        ));
        let last = alerts_page(&paged(&s.firing, 200), NOW, None);
        assert_eq!(
            last.matches("<strong>SpeakerFeedback</strong>").count(),
            PAGE_ROWS
        );
        assert!(last.contains("Page 200 of 200 (10000 in all)"), "{last}");
        assert!(!last.contains("Showing the first"));
    }

    #[test]
    fn lists_are_paged_and_never_drawn_whole() {
        let all: Vec<IncidentSummary> = (0..10_000)
            .map(|i| IncidentSummary {
                incident: format!("inc-{i}"),
                first: NOW,
                last: NOW,
                entries: 3,
            })
            .collect();
        let first = paged(&all, 1);
        assert_eq!(
            (first.rows.len(), first.pages, first.total),
            (PAGE_ROWS, 200, 10_000)
        );
        let page = incidents_page(&first, None);
        assert_eq!(
            page.matches("<tr>").count(),
            PAGE_ROWS + 1,
            "a header and one page of rows"
        );
        assert!(page.contains("Page 1 of 200 (10000 in all)"));
        assert!(page.contains("href=\"/incidents?page=2\">older</a>"));
        assert!(!page.contains("newer"));
        let past_the_end = paged(&all, 999);
        assert_eq!(
            (past_the_end.page, past_the_end.rows.len()),
            (200, PAGE_ROWS)
        );
        assert_eq!(paged(&all, 0).page, 1);
        let none: Vec<IncidentSummary> = Vec::new();
        assert_eq!(paged(&none, 3).rows.len(), 0);
        assert!(incidents_page(&paged(&none, 1), None).contains("no incidents yet"));
    }
}
