//! Hostile input, generated: every reader of outside data is driven with
//! deep nesting, huge counts, invalid UTF-8, template and mrkdwn syntax and
//! plain garbage, and must answer each input without a panic, without an
//! abort (a stack overflow ends this process and fails the run), within a
//! bounded time, and, when it refuses, with an error that says where.
//!
//! The readers: the exposition parser, PromQL through rule files and
//! runbook steps, runbook templates rendered over hostile alert labels,
//! YAML loading of config, rules, runbooks and checklists, Alertmanager's
//! webhook and the API v2 body, Slack's forms and payloads, and chat
//! command text.
//!
//! Budget: `FB_FUZZ_CASES` inputs per reader (default 48), so CI's cost is
//! fixed; raise it locally to search harder.

use std::time::{Duration, Instant};

use firebreak::diag::Diagnostics;
use firebreak::source::alertmanager::{read_postable, read_webhook};
use firebreak::source::exposition::{Format, parse_exposition};
use proptest::prelude::*;
use serde_json::{Value as Json, json};

/// Far above what any reader takes for a good input in a debug build; a
/// hang or a quadratic blow-up passes it.
const PER_INPUT: Duration = Duration::from_secs(5);

fn config() -> ProptestConfig {
    let cases = std::env::var("FB_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48);
    ProptestConfig {
        cases,
        // A failure is shrunk, but not for long: the input that failed is
        // printed either way.
        max_shrink_iters: 16,
        ..ProptestConfig::default()
    }
}

fn timed<T>(what: &str, input: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    let took = t.elapsed();
    assert!(
        took < PER_INPUT,
        "{what} took {took:?} on {:?}…",
        &input.chars().take(80).collect::<String>()
    );
    out
}

/// Pieces an attacker or a careless integrator would reach for.
const FRAGMENTS: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "`",
    "\\",
    "<!channel>",
    "<@U024BE7LH>",
    "<https://evil.example|Open>",
    "&",
    "<",
    ">",
    "\u{0}",
    "\u{1b}[2J",
    "\u{202e}",
    "💥",
    "ā",
    "\n",
    "\r\n",
    "\t",
    " ",
    ":",
    "- ",
    "*",
    "|",
    "#",
    "%",
    "=",
    "==",
    "=~",
    "!~",
    "!=",
    "+",
    "-",
    "/",
    "^",
    "or",
    "and",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "offset",
    "@",
    "sum",
    "rate",
    "abs",
    "label_replace",
    "[5m:1s]",
    "[1h]",
    "1e308",
    "NaN",
    "Inf",
    "-Inf",
    "0x",
    "up",
    "live_room_listeners",
    "{room=\"main\"}",
    "&&",
    "../",
    "%2e%2e",
    "?",
    "&amp;",
    "&lt;",
    "*bold*",
    "_it_",
    "~strike~",
    "```",
    "!",
    "anchor: &a",
    "*a",
    "<<: *a",
    "---",
    "...",
];

/// A mix of fragments: template, PromQL, mrkdwn and YAML syntax together.
fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..120).prop_map(|v| v.concat())
}

/// One construct nested far past any real input.
fn nested() -> impl Strategy<Value = String> {
    let pairs: &[(&str, &str)] = &[
        ("(", ")"),
        ("[", "]"),
        ("{", "}"),
        ("{{ (", ") }}"),
        ("abs(", ")"),
        ("-", ""),
        ("up + ", "up"),
        ("{% if x %}", "{% endif %}"),
        ("{{", "}}"),
        ("<", ">"),
        ("[[", "]]"),
        ("{a: ", "}"),
        ("- ", ""),
    ];
    (prop::sample::select(pairs), 0usize..20_000, any::<bool>()).prop_map(|((o, c), n, close)| {
        let mut s = o.repeat(n);
        s.push_str("up");
        if close {
            s.push_str(&c.repeat(n));
        }
        s
    })
}

/// Any of the above, or bytes that need not be UTF-8 (read lossily where a
/// reader takes text).
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => soup(),
        3 => nested(),
        1 => prop::collection::vec(any::<u8>(), 0..512)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => ".*",
    ]
}

fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        hostile_text().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..2048),
    ]
}

/// JSON (and YAML, which reads JSON) string literal for `s`.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Every diagnostic names its file and either a position or a field.
fn located(d: &Diagnostics, file: &str) {
    assert!(!d.is_empty());
    for e in d.iter() {
        assert_eq!(e.file, file, "{e}");
        assert!(e.pos.is_some() || !e.field.is_empty(), "not located: {e}");
        assert!(!e.message.is_empty(), "{e}");
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn exposition_parser(text in hostile_text()) {
        for format in [Format::Prometheus004, Format::OpenMetrics1] {
            let r = timed("exposition", &text, || parse_exposition(&text, format));
            if let Err(e) = r {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn promql_through_rule_files(expr in hostile_text(), label in hostile_text()) {
        let file = format!(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: {}\n        labels:\n          room: {}\n        annotations:\n          summary: {}\n",
            quoted(&expr),
            quoted(&label),
            quoted(&format!("{{{{ $labels.room }}}} {label}")),
        );
        let r = timed("rule file", &expr, || firebreak::rules::parse_rule_file("r.yml", &file));
        if let Err(d) = r {
            located(&d, "r.yml");
        }
    }

    #[test]
    fn promql_through_runbook_steps_and_templates(expr in hostile_text(), text in hostile_text()) {
        let file = format!(
            "kind: runbook\nname: r\ntrigger: {{manual: true}}\nsteps:\n  - id: q\n    action: query\n    with: {{expr: {}}}\n  - id: say\n    action: chat\n    with: {{text: {}}}\n",
            quoted(&expr),
            quoted(&text),
        );
        let env = firebreak::load::check_env([]);
        let r = timed("runbook", &expr, || firebreak::runbook::parse_runbook("r.yaml", &file, &env));
        if let Err(d) = r {
            located(&d, "r.yaml");
        }
    }

    #[test]
    fn templates_render_hostile_labels_and_refuse_hostile_templates(
        value in hostile_text(),
        template in hostile_text(),
    ) {
        use firebreak::runbook::template::Templates;
        let t = Templates::new();
        let ctx = json!({"alert": {"labels": {"room": value, "event": value}, "value": null}});
        // A value is data: it renders as itself, whatever syntax it holds.
        let out = timed("render", &value, || {
            t.render_value(&json!({"text": "room {{ alert.labels.room }}"}), &ctx)
        })
        .unwrap();
        prop_assert_eq!(out["text"].as_str().unwrap(), format!("room {value}"));
        // A template is checked or refused with a message, never a crash.
        let r = timed("template", &template, || t.render_str(&template, &ctx));
        if let Err(e) = r {
            prop_assert!(!e.message.is_empty());
        }
        let _ = timed("check", &template, || t.check(&template));
    }

    #[test]
    fn yaml_loading(text in prop_oneof![hostile_text(), yaml_bombs()]) {
        let env = firebreak::checklist::Env { targets: Vec::new(), runbooks: Vec::new() };
        if let Err(d) = timed("config", &text, || firebreak::config::Config::load("c.yaml", &text)) {
            located(&d, "c.yaml");
        }
        if let Err(d) = timed("rules", &text, || firebreak::rules::parse_rule_file("r.yml", &text)) {
            located(&d, "r.yml");
        }
        if let Err(d) = timed("runbook", &text, || {
            firebreak::runbook::parse_runbook("b.yaml", &text, &firebreak::load::check_env([]))
        }) {
            located(&d, "b.yaml");
        }
        if let Err(d) = timed("checklist", &text, || firebreak::checklist::parse_checklist("k.yaml", &text, &env)) {
            located(&d, "k.yaml");
        }
    }

    #[test]
    fn pushed_alerts(body in prop_oneof![hostile_bytes(), hostile_alerts()]) {
        let shown = String::from_utf8_lossy(&body).into_owned();
        for (what, r) in [
            ("v2", timed("v2", &shown, || read_postable(&body))),
            ("webhook", timed("webhook", &shown, || read_webhook(&body))),
        ] {
            if let Err(e) = r {
                prop_assert!(!e.problems.is_empty());
                prop_assert!(e.problems.len() <= firebreak::limits::MAX_PROBLEMS_LISTED + 1);
                for p in &e.problems {
                    prop_assert!(
                        p.starts_with('[') || p.starts_with("alerts") || p.starts_with("line ")
                            || p.starts_with("version") || p.starts_with("..."),
                        "{what}: not located: {p}"
                    );
                    prop_assert!(p.len() < 4096, "{what}: a problem echoes too much: {} bytes", p.len());
                }
            }
        }
    }

    #[test]
    fn slack_forms_and_payloads(body in hostile_bytes(), json_text in hostile_text()) {
        use firebreak::inbound::slack as s;
        let shown = String::from_utf8_lossy(&body).into_owned();
        let _ = timed("command form", &shown, || s::parse_command_form(&body));
        let _ = timed("interaction form", &shown, || s::parse_interaction_form(&body));
        let payload: Json = serde_json::from_str(&json_text).unwrap_or(json!({
            "type": "block_actions",
            "user": {"id": json_text, "name": json_text},
            "actions": [{"action_id": json_text, "value": json_text}],
            "text": json_text,
            "event": {"type": "app_mention", "user": json_text, "text": json_text, "channel": json_text},
        }));
        let _ = timed("interaction", &json_text, || s::parse_interaction_json(&payload));
        let _ = timed("event", &json_text, || s::parse_event_json(&payload));
    }

    #[test]
    fn chat_command_text(line in hostile_text()) {
        use firebreak::command::{Args, find, tokenize};
        let words = timed("tokenize", &line, || tokenize(&line));
        if let Ok(words) = words
            && let Some((first, rest)) = words.split_first()
        {
            let name = first.text.clone();
            if let Some(spec) = find(&name) {
                let _ = timed("command", &line, || (spec.parse)(Args::new(rest.to_vec())));
            }
        }
        // Every command's parser, with the hostile line as its arguments.
        for name in ["ack", "silence", "approve", "deny", "abort", "run", "pause", "plan", "checklist", "signoff", "timeline", "help"] {
            if let (Some(spec), Ok(words)) = (find(name), tokenize(&line)) {
                let _ = timed(name, &line, || (spec.parse)(Args::new(words)));
            }
        }
    }
}

/// YAML built to exhaust a loader: aliases that multiply, deep flow and
/// block nesting, and huge mappings.
fn yaml_bombs() -> impl Strategy<Value = String> {
    prop_oneof![
        (1usize..12).prop_map(|levels| {
            let mut s = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_owned();
            for i in 1..levels {
                let p = i - 1;
                s.push_str(&format!(
                    "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
                ));
            }
            s.push_str(&format!("groups: *a{}\n", levels - 1));
            s
        }),
        (100usize..50_000).prop_map(|n| format!("groups: {}{}\n", "[".repeat(n), "]".repeat(n))),
        (100usize..1_500).prop_map(|n| {
            (0..n).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect::<String>()
        }),
        (1000usize..50_000).prop_map(|n| {
            let mut s = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        labels:\n".to_owned();
            for i in 0..n {
                s.push_str(&format!("          l{i}: v\n"));
            }
            s
        }),
    ]
}

/// Bodies shaped like Alertmanager's, with hostile content and counts.
fn hostile_alerts() -> impl Strategy<Value = Vec<u8>> {
    let counts = prop_oneof![(0usize..20_000, 1usize..2), (0usize..50, 1usize..300)];
    (hostile_text(), counts, any::<bool>()).prop_map(|(text, (labels, alerts), webhook)| {
        // Long enough to carry any syntax; the count is the attack.
        let text: String = text.chars().take(64).collect();
        let mut l = serde_json::Map::new();
        l.insert("alertname".into(), json!(text));
        for i in 0..labels {
            l.insert(format!("l{i}"), json!(text));
        }
        l.insert(text.clone(), json!(text));
        let one = json!({"labels": l, "annotations": {"summary": text}, "startsAt": text});
        let list: Vec<Json> = (0..alerts.max(1)).map(|_| one.clone()).collect();
        let v = if webhook {
            json!({"version": "4", "status": "firing", "alerts": list.iter().map(|a| {
                    let mut a = a.clone();
                    a["status"] = json!("firing");
                    a
                }).collect::<Vec<_>>()})
        } else {
            json!(list)
        };
        serde_json::to_vec(&v).unwrap()
    })
}
