//! The console's pages, each a pure function from what the bot knows to
//! markup: the night now, incidents and one incident's review, runs and
//! one run's steps. No I/O here; `mod.rs` reads the control loop and the
//! store and hands the results in.

use std::fmt::Write as _;

use super::html::{Banner, Level, esc, seg, table};
use crate::chat::blocks::utc;
use crate::clock::Millis;
use crate::control::Status;
use crate::human::duration;
use crate::incident::Review;
use crate::store::{RunRecord, StepRecord};

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

/// `GET /`: the night at a glance.
pub fn now_page(
    status: &Status,
    recent: &[(String, Millis, String)],
    leader: Option<&str>,
    now: Millis,
    acts: Option<&Acts>,
) -> String {
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
        out.push_str(&table(
            "the newest incidents",
            &["incident", "began", "how it stands"],
            &incident_rows(recent),
        ));
        out.push_str("<p><a href=\"/incidents\">Every incident</a></p>");
    }

    let firing: Vec<String> = status
        .firing
        .iter()
        .map(|a| {
            let id = &a.fingerprint[..8.min(a.fingerprint.len())];
            let state = match (&a.silenced_by, &a.acked) {
                (Some(s), _) => format!("silenced ({})", esc(s)),
                (None, Some(k)) => format!("acked by {}", esc(&k.by)),
                (None, None) => format!("<strong>firing</strong> {}", act("Ack", &format!("ack {id}"))),
            };
            format!(
                "<td><strong>{}</strong><br><code>{}</code></td><td>{}</td><td>{}</td><td class=\"when\">{} ({} ago)</td><td>{}</td><td>{state}</td>",
                esc(&a.name),
                esc(&labels_text(a.labels.clone())),
                esc(&a.summary),
                if a.value.is_finite() { format!("{}", a.value) } else { "–".into() },
                utc(a.since),
                duration(now - a.since),
                incident_link(&a.incident),
            )
        })
        .collect();
    section(
        &mut out,
        "Firing",
        "no alert is firing",
        &["alert", "summary", "value", "since", "incident", "state"],
        firing,
    );

    let pending: Vec<String> = status
        .pending
        .iter()
        .map(|p| {
            let labels = p
                .labels
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()));
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
        })
        .collect();
    section(
        &mut out,
        "Pending",
        "no alert is waiting out its rule's `for`",
        &["alert", "summary", "condition since", "fires"],
        pending,
    );

    let waiting: Vec<String> = status
        .waiting
        .iter()
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
    section(
        &mut out,
        "Waiting for approval",
        "no run waits for a person",
        &["run", "what", "who may answer", "deadline", ""],
        waiting,
    );

    let running: Vec<String> = status
        .running
        .iter()
        .map(|(runbook, key, run)| {
            format!(
                "<td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td>",
                esc(runbook),
                esc(key),
                run_link(run),
                act("Abort", &format!("abort {run}")),
            )
        })
        .collect();
    section(
        &mut out,
        "Runs in progress",
        "no runbook is running",
        &["runbook", "concurrency key", "run", ""],
        running,
    );

    let silences: Vec<String> = status
        .silences
        .iter()
        .map(|s| {
            format!(
                "<td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td class=\"when\">{} (in {})</td><td>{}</td>",
                esc(&s.id),
                esc(&s.matchers),
                esc(&s.by),
                utc(s.ends_at),
                duration(s.ends_at - now),
                esc(&s.comment),
            )
        })
        .collect();
    section(
        &mut out,
        "Silences",
        "no silence is active",
        &["id", "matchers", "by", "ends", "comment"],
        silences,
    );
    if let Some(a) = acts {
        out.push_str(&a.command_box());
    }
    out
}

fn section(out: &mut String, title: &str, none: &str, head: &[&str], rows: Vec<String>) {
    let _ = write!(out, "<h2>{} ({})</h2>", esc(title), rows.len());
    if rows.is_empty() {
        let _ = write!(out, "<p class=\"muted\">{}.</p>", esc(none));
    } else {
        out.push_str(&table(title, head, &rows));
    }
}

/// One page of a list, and the links to the others.
pub struct Paged<'a, T> {
    pub rows: &'a [T],
    pub page: usize,
    pub pages: usize,
    pub total: usize,
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

fn pager<T>(out: &mut String, p: &Paged<'_, T>, base: &str) {
    if p.pages <= 1 {
        return;
    }
    let _ = write!(
        out,
        "<nav aria-label=\"pages\"><p>Page {} of {} ({} in all)",
        p.page, p.pages, p.total
    );
    if p.page > 1 {
        let _ = write!(out, " · <a href=\"{base}?page={}\">newer</a>", p.page - 1);
    }
    if p.page < p.pages {
        let _ = write!(out, " · <a href=\"{base}?page={}\">older</a>", p.page + 1);
    }
    out.push_str("</p></nav>");
}

fn incident_rows(rows: &[(String, Millis, String)]) -> Vec<String> {
    rows.iter()
        .map(|(id, began, outcome)| {
            format!(
                "<td>{}</td><td class=\"when\">{}</td><td>{}</td>",
                incident_link(id),
                esc(&super::html::day_and_time(*began)),
                esc(outcome)
            )
        })
        .collect()
}

/// `GET /incidents`: newest first, each with when it began and how it
/// ended.
pub fn incidents_page(list: &Paged<'_, (String, Millis, String)>) -> String {
    let mut out = String::new();
    let rows = incident_rows(list.rows);
    section(
        &mut out,
        "Incidents",
        "no incidents yet",
        &["incident", "began", "outcome"],
        rows,
    );
    pager(&mut out, list, "/incidents");
    out
}

/// `GET /incidents/ID`: the post-incident report as
/// `firebreak timeline --markdown` writes it (figures, audience, what
/// fired, what was done, what people did), then its timeline, paged.
pub fn incident_page(r: &Review, entries: &Paged<'_, crate::incident::TimelineEntry>) -> String {
    let mut out = String::from("<article class=\"review\">");
    out.push_str(&super::markdown::to_html(
        &r.markdown_summary(&super::html::day_and_time),
    ));
    out.push_str("</article>");
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
        &format!("/incidents/{}", esc(&seg(&r.incident))),
    );
    out
}

/// `GET /runs`: newest first.
pub fn runs_page(list: &Paged<'_, RunRecord>) -> String {
    let mut out = String::new();
    let rows: Vec<String> = list.rows.iter().map(run_row).collect();
    section(
        &mut out,
        "Runs",
        "no runs yet",
        &["run", "runbook", "incident", "state", "started", "error"],
        rows,
    );
    pager(&mut out, list, "/runs");
    out
}

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
    out.push_str(&table(
        "the run",
        &["run", "runbook", "incident", "state", "started", "error"],
        &[run_row(r)],
    ));
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
        let page = now_page(&status("\"><script>x</script>"), &[], None, NOW, None);
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

    #[test]
    fn a_pending_alert_counts_down_to_its_for() {
        let page = now_page(&status("main"), &[], None, NOW, None);
        assert!(page.contains("in 40s if it holds"), "{page}");
        let later = now_page(&status("main"), &[], None, NOW + 60_000, None);
        assert!(later.contains(">at the next evaluation ("), "{later}");
    }

    #[test]
    fn buttons_follow_the_role_and_carry_the_session_token() {
        let acts = |role| Acts {
            role,
            csrf: "c0ffee".into(),
            back: "/".into(),
        };
        let commander = now_page(
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
        let responder = now_page(
            &status("main"),
            &[],
            None,
            NOW,
            Some(&acts(Role::Responder)),
        );
        assert!(!responder.contains("Pause automation") && responder.contains(">Abort<"));
        let viewer = now_page(&status("main"), &[], None, NOW, Some(&acts(Role::Viewer)));
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
    fn lists_are_paged_and_never_drawn_whole() {
        let all: Vec<(String, Millis, String)> = (0..10_000)
            .map(|i| (format!("inc-{i}"), NOW, "resolved".to_owned()))
            .collect();
        let first = paged(&all, 1);
        assert_eq!(
            (first.rows.len(), first.pages, first.total),
            (PAGE_ROWS, 200, 10_000)
        );
        let page = incidents_page(&first);
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
        let none: Vec<(String, Millis, String)> = Vec::new();
        assert_eq!(paged(&none, 3).rows.len(), 0);
        assert!(incidents_page(&paged(&none, 1)).contains("no incidents yet"));
    }
}
