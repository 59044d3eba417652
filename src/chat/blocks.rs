//! Slack Block Kit rendering of chat messages: pure, so snapshot tests can
//! pin what people see. A plain message is one section; an incident card
//! is a header, its alerts, its runbook's progress and the buttons that
//! make sense in its state. A button's value is the chat command it
//! stands for, so a click and a typed command take the same path.

use serde_json::{Value as Json, json};

use super::ChatMessage;
use super::card::{Card, CardAlert, human_value};
use super::clip;
use super::mrkdwn::escape as esc;
use crate::checklist::Outcome;
use crate::checklist::state::RunState;

/// Section text is capped at 3,000 characters by Slack.
const SECTION_MAX: usize = 3000;

/// Every button's `action_id` starts with this, so an interaction can be
/// told apart from another app's.
pub const ACTION_PREFIX: &str = "firebreak:";
/// Header text is capped at 150.
const HEADER_MAX: usize = 150;

/// The blocks for a message. `text` stays the notification fallback.
pub fn render(msg: &ChatMessage) -> Json {
    if let Some(run) = &msg.checklist {
        return checklist_blocks(run);
    }
    match &msg.card {
        Some(card) => card_blocks(card),
        None => json!([section(&esc(&msg.text))]),
    }
}

fn section(text: &str) -> Json {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_MAX)}})
}

fn card_blocks(c: &Card) -> Json {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": clip(&format!("{} {} · incident {}", c.status.icon(), c.status.word(), c.incident), HEADER_MAX),
            "emoji": true,
        },
    })];
    if let Some(a) = &c.audience {
        blocks.push(context(&format!(
            ":busts_in_silhouette: {}",
            esc(&a.line())
        )));
    }
    for b in &c.blind {
        blocks.push(context(&format!(
            ":warning: *firebreak is blind:* {} since <!date^{}^{{time}}|{}> ({}); check it by hand",
            esc(&b.what),
            b.since.div_euclid(1000),
            utc(b.since),
            esc(&clip(&b.why, 200))
        )));
    }
    for a in c.shown() {
        blocks.push(alert_block(a));
    }
    if c.more() > 0 {
        blocks.push(context(&format!(
            "… and {} more alerts; `alerts` lists them all",
            c.more()
        )));
    }
    if let Some(r) = &c.run {
        let mut text = format!(
            "*Runbook* `{}` · run `{}`\n*State:* {}",
            esc(&r.runbook),
            esc(&r.id),
            r.state
        );
        if let Some((step, how)) = &r.last_step {
            text.push_str(&format!(" · last step `{}` {how}", esc(step)));
        }
        if let Some(w) = &r.waiting {
            text.push_str(&format!(
                "\n:raised_hand: waiting for approval of `{}`",
                esc(w)
            ));
        }
        blocks.push(section(&text));
    }
    if let Some(by) = &c.acked_by {
        blocks.push(context(&format!("Acknowledged by {}", esc(by))));
    }
    let buttons = buttons(c);
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "block_id": "firebreak", "elements": buttons}));
    }
    Json::Array(blocks)
}

/// Slack allows 50 blocks; a checklist longer than this is counted.
const SHOWN_CHECKS: usize = 40;

/// A checklist run's card: the verdict (or where it stands), a section per
/// check with its evidence, and a sign-off button per sign-off still open.
fn checklist_blocks(r: &RunState) -> Json {
    use crate::checklist::Severity;
    use crate::checklist::state::icon;
    let phase = r.phase();
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": clip(&format!("{} {} · checklist {}", phase.icon(), phase.headline(), r.checklist), HEADER_MAX),
                "emoji": true,
            },
        }),
        context(&format!(
            "run `{}` · started by {} <!date^{}^{{time}}|{}>",
            esc(&r.id),
            esc(&r.started_by),
            r.started_at.div_euclid(1000),
            utc(r.started_at)
        )),
    ];
    for c in r.checks.iter().take(SHOWN_CHECKS) {
        let warn = if c.severity == Severity::Warning {
            " · warning"
        } else {
            ""
        };
        let (mark, evidence) = match (&c.outcome, r.finished_at) {
            (None, None) => ("⏳", "_checking…_".to_owned()),
            (None, Some(_)) => ("⚠️", "did not finish".to_owned()),
            (Some(o), _) => (icon(Some(o)), esc(&c.evidence)),
        };
        let mut text = format!(
            "{mark} *{}* · `{}`{warn}\n{evidence}",
            esc(&c.name),
            esc(&c.kind)
        );
        if let Some(fix) = c.fix_to_show() {
            text.push_str(&format!("\n:wrench: {}", esc(fix)));
        }
        if let (Some(s), Some(Outcome::Waiting), None) = (&c.signoff, &c.outcome, r.finished_at) {
            text.push_str(&format!(
                " · by <!date^{}^{{time}}|{}>",
                s.deadline_at.div_euclid(1000),
                utc(s.deadline_at)
            ));
        }
        blocks.push(section(&text));
    }
    if r.checks.len() > SHOWN_CHECKS {
        blocks.push(context(&format!(
            "… and {} more checks; `firebreak check {}` shows them all",
            r.checks.len() - SHOWN_CHECKS,
            esc(&r.checklist)
        )));
    }
    if r.finished_at.is_some() {
        let blocking = crate::checklist::report::blocking_line(r);
        if !blocking.is_empty() {
            blocks.push(context(&esc(&blocking)));
        }
    } else {
        let buttons: Vec<Json> = r
            .waiting_signoffs()
            .into_iter()
            .map(|(check, roles)| {
                let needs: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                let mut b = button(
                    &format!("Sign off {check}"),
                    format!("signoff {} {check}", r.id),
                    Some("primary"),
                );
                b["confirm"] = json!({
                    "title": {"type": "plain_text", "text": "Sign off?"},
                    "text": {"type": "plain_text", "text": clip(&format!("You confirm {check} of {} (it needs {}). Your name goes on the run and into the timeline.", r.checklist, needs.join(" and ")), 300)},
                    "confirm": {"type": "plain_text", "text": "Sign off"},
                    "deny": {"type": "plain_text", "text": "Not yet"},
                });
                b
            })
            .collect();
        if !buttons.is_empty() {
            blocks.push(
                json!({"type": "actions", "block_id": "firebreak-signoff", "elements": buttons}),
            );
        }
    }
    Json::Array(blocks)
}

fn alert_block(a: &CardAlert) -> Json {
    let state = if a.firing { "firing" } else { "resolved" };
    let mut text = format!("*{}* {state}", esc(&a.name));
    if let Some(s) = &a.severity {
        text.push_str(&format!(" · `{}`", esc(s)));
    }
    if !a.value.is_nan() {
        text.push_str(&format!(" · value *{}*", human_value(a.value)));
    }
    text.push_str(&format!(
        " · since <!date^{}^{{time}}|{}>",
        a.since.div_euclid(1000),
        utc(a.since)
    ));
    if !a.labels.is_empty() {
        let labels: Vec<String> = a
            .labels
            .iter()
            .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
            .collect();
        text.push_str(&format!("\n`{}`", labels.join("` `")));
    }
    if let Some(s) = &a.summary {
        text.push_str(&format!("\n{}", esc(s)));
    }
    section(&text)
}

fn context(text: &str) -> Json {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, SECTION_MAX)}]})
}

fn button(label: &str, command: String, style: Option<&str>) -> Json {
    let mut b = json!({
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        // Unique within the block, as Slack requires: two Run buttons differ.
        "action_id": clip(&format!("{ACTION_PREFIX}{}", command.replace(' ', ":")), 255),
        "value": command,
    });
    if let Some(s) = style {
        b["style"] = json!(s);
    }
    b
}

/// The card's actions ([`Card::actions`]) as Slack buttons.
fn buttons(c: &Card) -> Vec<Json> {
    c.actions()
        .into_iter()
        .map(|a| {
            let mut b = button(&a.label, a.command, a.style);
            if let Some(ask) = a.confirm {
                b["confirm"] = json!({
                    "title": {"type": "plain_text", "text": ask.title},
                    "text": {"type": "plain_text", "text": ask.text},
                    "confirm": {"type": "plain_text", "text": ask.yes},
                    "deny": {"type": "plain_text", "text": ask.no},
                });
            }
            b
        })
        .collect()
}

/// An instant as chat reads it, in UTC (Slack's `<!date>` shows each
/// person their own zone; this is the fallback text).
pub fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::card::CardRun;

    #[test]
    fn long_text_is_clipped_to_slacks_section_limit() {
        let m = ChatMessage {
            text: "x".repeat(5000),
            ..Default::default()
        };
        let b = render(&m);
        assert_eq!(b[0]["text"]["text"].as_str().unwrap().chars().count(), 3000);
    }

    /// 2023-05-24T22:03:05Z, 18:03:05 in New York.
    const AT: i64 = 1_684_965_785_000;

    fn card(status_run: Option<&str>) -> Card {
        let mut c = Card::new("launch", AT);
        c.firing(
            CardAlert {
                name: "ListenerCapacityBreachPredicted".into(),
                severity: Some("critical".into()),
                labels: vec![
                    ("event".into(), "launch".into()),
                    ("room".into(), "main".into()),
                ],
                value: 1_712_004.0,
                since: AT,
                summary: Some(
                    "Room main is projected to pass its 1,000,000 listener capacity within 10m"
                        .into(),
                ),
                firing: true,
            },
            AT,
        );
        c.silence = Some("event=\"launch\"".into());
        c.runnable = vec!["move-to-secondary-room".into(), "cap-listeners".into()];
        if let Some(state) = status_run {
            c.run_progress(
                CardRun {
                    id: "move-to-secondary-room-1684965785-00011".into(),
                    runbook: "move-to-secondary-room".into(),
                    state: crate::run_state::RunState::parse(state).unwrap(),
                    last_step: Some(("create_room".into(), crate::run_state::StepState::Succeeded)),
                    waiting: (state == "awaiting_approval").then(|| "move_event".into()),
                },
                AT + 4000,
            );
        }
        c
    }

    fn msg(c: Card) -> ChatMessage {
        ChatMessage {
            channel: "#live-incidents".into(),
            incident: Some(c.incident.clone()),
            text: c.text(),
            card: Some(c),
            ..Default::default()
        }
    }

    /// Every `<` in what Slack will read as mrkdwn opens one of the bot's
    /// own date sequences; anything else is data and must be escaped.
    fn only_the_bots_own_sequences(blocks: &Json) {
        fn walk(v: &Json, out: &mut Vec<String>) {
            match v {
                Json::Object(m) => {
                    if m.get("type").and_then(Json::as_str) == Some("mrkdwn")
                        && let Some(t) = m.get("text").and_then(Json::as_str)
                    {
                        out.push(t.to_owned());
                    }
                    m.values().for_each(|x| walk(x, out));
                }
                Json::Array(a) => a.iter().for_each(|x| walk(x, out)),
                _ => {}
            }
        }
        let mut texts = Vec::new();
        walk(blocks, &mut texts);
        assert!(!texts.is_empty());
        for t in texts {
            for (i, _) in t.match_indices('<') {
                assert!(t[i..].starts_with("<!date^"), "unescaped data in {t:?}");
            }
        }
    }

    /// Regression: labels, annotations and names reached Slack verbatim, so
    /// an alert could ping the channel or plant a disguised link.
    #[test]
    fn alert_data_cannot_ping_or_plant_links() {
        let mut c = Card::new("launch", AT);
        c.firing(
            CardAlert {
                name: "Evil<!channel>".into(),
                severity: Some("<!here>".into()),
                labels: vec![("room".into(), "<@U024BE7LH>".into())],
                value: 1.0,
                since: AT,
                summary: Some("<https://evil.example|Open the runbook> & more".into()),
                firing: true,
            },
            AT,
        );
        c.run_progress(
            CardRun {
                id: "r-1".into(),
                runbook: "move".into(),
                state: crate::run_state::RunState::RUNNING,
                last_step: Some((
                    "verify <!everyone>".into(),
                    crate::run_state::StepState::Failed,
                )),
                waiting: None,
            },
            AT,
        );
        c.acked_by = Some("<!subteam^S1>".into());
        let text = c.text();
        let b = render(&msg(c));
        only_the_bots_own_sequences(&b);
        let all = b.to_string();
        assert!(
            all.contains("&lt;https://evil.example|Open the runbook&gt; &amp; more"),
            "{all}"
        );
        assert!(all.contains("Acknowledged by &lt;!subteam^S1&gt;"), "{all}");
        // A plain message's section is escaped whole.
        let plain = render(&ChatMessage {
            text,
            ..Default::default()
        });
        only_the_bots_own_sequences(&plain);
        assert!(plain.to_string().contains("Evil&lt;!channel&gt;"));
    }

    #[test]
    fn firing_card() {
        insta::assert_snapshot!(serde_json::to_string_pretty(&render(&msg(card(None)))).unwrap());
    }

    #[test]
    fn card_waiting_for_approval() {
        let mut c = card(Some("awaiting_approval"));
        c.ack("U012ONCALL", AT + 5000);
        insta::assert_snapshot!(serde_json::to_string_pretty(&render(&msg(c))).unwrap());
    }

    /// Issue 22, item 2: the card of a live event says what the bot
    /// cannot see, and since when; the reason (outside text) is escaped.
    #[test]
    fn a_card_while_the_bot_is_blind() {
        let mut c = card(Some("running"));
        c.blind.push(crate::chat::card::Blind {
            what: "scrape target `sim`".into(),
            since: AT - 60_000,
            why: "HTTP 503 <b>Service Unavailable</b> @here".into(),
        });
        insta::assert_snapshot!(serde_json::to_string_pretty(&render(&msg(c))).unwrap());
    }

    /// The buttons' `field` values, in order; empty without buttons.
    fn buttons(blocks: &Json, field: &str) -> Vec<String> {
        blocks
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().unwrap())
            .map(|e| e[field].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn several_run_buttons_have_distinct_action_ids() {
        let ids = buttons(&render(&msg(card(None))), "action_id");
        assert_eq!(
            ids,
            [
                "firebreak:ack:launch",
                "firebreak:silence:event=\"launch\":1h",
                "firebreak:run:move-to-secondary-room",
                "firebreak:run:cap-listeners",
            ]
        );
    }

    /// A click goes through the same grammar as typing: every button any
    /// state shows must be a command it accepts.
    #[test]
    fn every_button_is_a_command_the_grammar_accepts() {
        use crate::command::{Args, find, tokenize};
        for state in [
            None,
            Some("running"),
            Some("awaiting_approval"),
            Some("failed"),
        ] {
            for value in buttons(&render(&msg(card(state))), "value") {
                let mut words = tokenize(&value).unwrap().into_iter();
                let spec = find(&words.next().unwrap().text).unwrap();
                if let Err(err) = (spec.parse)(Args::new(words.collect())) {
                    panic!("button {value:?} does not parse: {err}");
                }
            }
        }
    }

    #[test]
    fn resolved_card_has_no_buttons() {
        let mut c = card(Some("succeeded"));
        c.resolved(
            "ListenerCapacityBreachPredicted",
            &[
                ("event".into(), "launch".into()),
                ("room".into(), "main".into()),
            ],
            AT + 60_000,
        );
        let b = render(&msg(c));
        assert_eq!(b[0]["text"]["text"], "✅ RESOLVED · incident launch");
        assert!(b.as_array().unwrap().iter().all(|b| b["type"] != "actions"));
    }

    #[test]
    fn buttons_carry_the_command_they_stand_for() {
        let b = render(&msg(card(Some("running"))));
        let values = buttons(&b, "value");
        let ids: std::collections::BTreeSet<String> =
            buttons(&b, "action_id").into_iter().collect();
        assert_eq!(ids.len(), values.len(), "action ids must be unique");
        assert_eq!(
            values,
            [
                "ack launch",
                "silence event=\"launch\" 1h",
                "abort move-to-secondary-room-1684965785-00011",
            ]
        );
    }

    fn checklist_run() -> RunState {
        let loaded =
            crate::load::load_embedded(crate::config::Config::for_simulator("127.0.0.1:9100"))
                .unwrap();
        let list = &loaded.checklists[0];
        let event = crate::checklist::event_params(list, &[]).unwrap();
        RunState::new(
            "launch-readiness-1684965300-00011",
            list,
            event,
            &crate::timeline::By::Person(crate::roles::Who::new("alice", "alice")),
            AT,
        )
    }

    fn measured(r: &mut RunState, failing: &[&str]) {
        let names: Vec<String> = r
            .checks
            .iter()
            .filter(|c| c.signoff.is_none())
            .map(|c| c.name.clone())
            .collect();
        for name in names {
            let fail = failing.contains(&name.as_str());
            r.record(crate::checklist::CheckResult {
                name: name.clone(),
                kind: String::new(),
                severity: crate::checklist::Severity::Blocker,
                outcome: if fail { Outcome::Fail } else { Outcome::Pass },
                evidence: format!("{name} evidence"),
                took_ms: 1,
            });
        }
    }

    fn checklist_msg(r: &RunState) -> ChatMessage {
        ChatMessage {
            checklist: Some(Box::new(r.clone())),
            ..Default::default()
        }
    }

    #[test]
    fn a_checklist_waiting_for_sign_off_has_a_button_per_sign_off() {
        let mut r = checklist_run();
        measured(&mut r, &[]);
        let blocks = render(&checklist_msg(&r));
        insta::assert_snapshot!(serde_json::to_string_pretty(&blocks).unwrap());
        let actions = blocks.as_array().unwrap().last().unwrap();
        assert_eq!(
            actions["elements"][0]["value"],
            "signoff launch-readiness-1684965300-00011 commander-sign-off"
        );
    }

    #[test]
    fn a_no_go_checklist_shows_its_fixes_and_no_buttons() {
        let mut r = checklist_run();
        measured(&mut r, &["room-capacity", "host-audio-checked"]);
        assert!(r.settle(AT + 1000));
        let blocks = render(&checklist_msg(&r));
        let text = serde_json::to_string_pretty(&blocks).unwrap();
        assert!(!text.contains("\"actions\""), "{text}");
        insta::assert_snapshot!(text);
    }
}
