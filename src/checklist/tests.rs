use super::*;

fn env() -> Env {
    Env {
        targets: vec!["platform".into()],
        runbooks: vec![
            "move-to-secondary-room".into(),
            "mute-feedback-speaker".into(),
        ],
    }
}

const GOOD: &str = r#"kind: checklist
name: launch-readiness
description: Before the campaign launch.
event:
  start: "2023-05-24T18:00:00-04:00"
  expected_audience: 600000
  peak_join_rate_per_min: 50000
  room: main
  account: owner
schedule: [60m, 10m]
checks:
  - name: room-capacity
    capacity:
      audience: "{{ event.expected_audience }}"
      join_rate_per_min: "{{ event.peak_join_rate_per_min }}"
      capacity: 'live_room_capacity{room="{{ event.room }}"}'
      admission_per_min: 'live_room_admission_rate{room="{{ event.room }}"} * 60'
      headroom: 20%
  - name: secondary-room
    http: {target: platform, path: "/api/v1/rooms?account=cohost", status: [200], body_contains: '"ready":true'}
  - name: host-audio
    severity: warning
    timeout: 5s
    query: {expr: 'max(live_speaker_feedback_level{room="main"})', expect: "< 0.3"}
  - name: mitigations
    runbook: {names: [move-to-secondary-room, mute-feedback-speaker]}
  - name: sign-off
    signoff: {roles: [commander], deadline: 15m}
"#;

#[test]
fn a_checklist_loads_with_every_kind_of_check() {
    let c = parse_checklist("launch.yaml", GOOD, &env()).unwrap();
    assert_eq!(c.name, "launch-readiness");
    assert_eq!(c.event["expected_audience"], serde_json::json!(600000));
    assert_eq!(
        c.schedule,
        [PromDuration::from_secs(3600), PromDuration::from_secs(600)]
    );
    let kinds: Vec<(&str, &str, Severity)> = c
        .checks
        .iter()
        .map(|k| (k.name.as_str(), k.kind.name(), k.severity))
        .collect();
    assert_eq!(
        kinds,
        [
            ("room-capacity", "capacity", Severity::Blocker),
            ("secondary-room", "http", Severity::Blocker),
            ("host-audio", "query", Severity::Warning),
            ("mitigations", "runbook", Severity::Blocker),
            ("sign-off", "signoff", Severity::Blocker),
        ]
    );
    assert_eq!(c.checks[2].timeout, PromDuration::from_secs(5));
    assert_eq!(c.checks[0].timeout, DEFAULT_TIMEOUT);
    assert_eq!(
        c.checks[2].kind,
        CheckKind::Query {
            expr: "max(live_speaker_feedback_level{room=\"main\"})".into(),
            op: Cmp::Lt,
            threshold: "0.3".into(),
        }
    );
    let CheckKind::Capacity { headroom, .. } = c.checks[0].kind else {
        panic!()
    };
    assert!((headroom - 0.2).abs() < 1e-9);
}

#[test]
fn every_mistake_is_reported_with_its_place() {
    let bad = r#"kind: checklist
name: Launch
event:
  room: main
  nested: {a: 1}
schedule: [1h, soon]
checks:
  - name: cap
    capacity:
      audience: "{{ event.audiance }}"
      join_rate_per_min: [1]
      capacity: live_room_capacity
      admission_per_min: live_room_admission_rate
      headroom: lots
  - name: cap
    http: {target: prod, method: FETCH, path: rooms, status: 99}
  - name: q
    query: {expr: 'sum(', expect: "about 3"}
  - name: both
    query: {expr: up, expect: "> 0"}
    runbook: {names: [x]}
  - name: rb
    runbook: {names: [move-to-secondry-room]}
  - name: ok
    severity: fatal
    signoff: {roles: [boss], deadline: whenever}
"#;
    let errs = parse_checklist("bad.yaml", bad, &env()).unwrap_err();
    let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let want = [
        "bad.yaml:2:7: name: invalid name \"Launch\"",
        "bad.yaml:5:11: event.nested: expected a string, number or true/false",
        "bad.yaml:6:16: schedule[1]: invalid duration \"soon\"",
        "bad.yaml:6:12: schedule: needs `event.start`",
        "bad.yaml:10:17: checks[0].capacity.audience: reads \"event.audiance\", which is not an event parameter; declared: nested, room",
        "bad.yaml:11:26: checks[0].capacity.join_rate_per_min: expected a number or a template",
        "bad.yaml:14:17: checks[0].capacity.headroom: \"lots\" is not a headroom",
        "bad.yaml:15:11: checks[1].name: \"cap\" is already the name of checks[0]",
        "bad.yaml:16:20: checks[1].http.target: unknown target \"prod\"; configured targets: platform",
        "bad.yaml:16:34: checks[1].http.method: unknown method \"FETCH\"",
        "bad.yaml:16:47: checks[1].http.path: must start with /",
        "bad.yaml:16:62: checks[1].http.status: 99 is not an HTTP status",
        "bad.yaml:18:22: checks[2].query.expr: unclosed left parenthesis",
        "bad.yaml:18:35: checks[2].query.expect: \"about 3\" is not a comparison",
        "bad.yaml:19:5: checks[3]: give exactly one of query, capacity, http, runbook, credentials or signoff (got 2)",
        "bad.yaml:23:23: checks[4].runbook.names[0]: no runbook named \"move-to-secondry-room\" (did you mean \"move-to-secondary-room\"?)",
        "bad.yaml:25:15: checks[5].severity: unknown severity \"fatal\"",
        "bad.yaml:26:23: checks[5].signoff.roles[0]: unknown role \"boss\"",
        "bad.yaml:26:40: checks[5].signoff.deadline: invalid duration \"whenever\"",
    ];
    for w in want {
        assert!(
            lines.iter().any(|l| l.starts_with(w)),
            "missing {w}\n{lines:#?}"
        );
    }
    assert_eq!(lines.len(), want.len(), "{lines:#?}");
}

#[test]
fn unknown_fields_are_refused_with_their_place() {
    let text = GOOD.replace(
        "    http: {target: platform,",
        "    htpp: {target: platform,",
    );
    let errs = parse_checklist("c.yaml", &text, &env())
        .unwrap_err()
        .to_string();
    assert!(errs.contains("htpp"), "{errs}");
    assert!(errs.starts_with("c.yaml:20:"), "{errs}");
}

fn result(name: &str, severity: Severity, outcome: Outcome) -> CheckResult {
    CheckResult {
        name: name.into(),
        kind: "query".into(),
        severity,
        outcome,
        evidence: String::new(),
        took_ms: 1,
    }
}

#[test]
fn the_verdict_is_go_only_when_every_blocker_passed() {
    use Outcome::*;
    use Severity::*;
    assert_eq!(verdict(&[]), Verdict::Go);
    assert_eq!(
        verdict(&[result("a", Blocker, Pass), result("w", Warning, Fail)]),
        Verdict::Go,
        "a warning never blocks"
    );
    for bad in [Fail, Error("timed out after 10s".into()), Waiting] {
        assert_eq!(
            verdict(&[
                result("a", Blocker, Pass),
                result("b", Blocker, bad.clone())
            ]),
            Verdict::NoGo,
            "{bad:?}"
        );
    }
    let json = serde_json::to_value(result("b", Blocker, Error("down".into()))).unwrap();
    assert_eq!(json["outcome"], "error");
    assert_eq!(json["reason"], "down");
    assert_eq!(serde_json::to_value(Verdict::NoGo).unwrap(), "NO-GO");
}

#[test]
fn comparisons_hold_as_written() {
    assert!(Cmp::Lt.holds(0.1, 0.3));
    assert!(!Cmp::Lt.holds(0.3, 0.3));
    assert!(Cmp::Ge.holds(0.3, 0.3));
    assert!(Cmp::Ne.holds(1.0, 2.0));
    assert_eq!(Cmp::parse(">="), Some(Cmp::Ge));
    assert_eq!(Cmp::Ge.symbol(), ">=");
    assert_eq!(Cmp::parse("=>"), None);
}

#[test]
fn event_parameters_are_overridden_in_their_own_type() {
    let c = parse_checklist("launch.yaml", GOOD, &env()).unwrap();
    let p = event_params(
        &c,
        &[
            ("expected_audience".into(), "250000".into()),
            ("room".into(), "side".into()),
        ],
    )
    .unwrap();
    assert_eq!(p["expected_audience"], serde_json::json!(250000.0));
    assert_eq!(p["room"], "side");
    assert_eq!(
        event_params(&c, &[("expected_audience".into(), "lots".into())])
            .unwrap_err()
            .to_string(),
        "expected_audience=lots: expected a number"
    );
    let e = event_params(&c, &[("audience".into(), "1".into())])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("launch-readiness has no event parameter \"audience\"; it has account, expected_audience"), "{e}");
}

#[test]
fn a_parameter_in_a_promql_string_without_the_filter_is_a_located_warning() {
    let c = parse_checklist("launch.yaml", GOOD, &env()).unwrap();
    let shown: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    let why = "is inside a PromQL string without `| promql`";
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(
        shown[0].starts_with(&format!(
            "launch.yaml:16:17: warning: checks[0].capacity.capacity: `{{{{ event.room }}}}` {why}"
        )),
        "{shown:?}"
    );
    assert!(
        shown[1].starts_with(&format!(
            "launch.yaml:17:26: warning: checks[0].capacity.admission_per_min: `{{{{ event.room }}}}` {why}"
        )),
        "{shown:?}"
    );
    let escaped = GOOD.replace("{{ event.room }}", "{{ event.room | promql }}");
    let c = parse_checklist("launch.yaml", &escaped, &env()).unwrap();
    assert!(c.warnings.is_empty(), "{}", c.warnings);
}

/// Issue 22, item 6: a checklist's typos are all reported at once, each
/// with its path and what it was probably meant to be.
#[test]
fn every_typo_in_a_checklist_is_reported_at_once() {
    let text = GOOD
        .replace("    severity: warning\n", "    sevrity: warning\n")
        .replace(
            "    http: {target: platform,",
            "    htp: {target: platform,",
        )
        .replace("schedule: [60m, 10m]", "schedul: [60m, 10m]");
    let errs = parse_checklist("c.yaml", &text, &env()).unwrap_err();
    let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "c.yaml:10:1: schedul: unknown field `schedul` (did you mean `schedule`?)",
            "c.yaml:20:5: checks[1].htp: unknown field `htp` (did you mean `http`?)",
            "c.yaml:22:5: checks[2].sevrity: unknown field `sevrity` (did you mean `severity`?)",
        ]
    );
}
