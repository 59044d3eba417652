use super::*;
use serde_json::json;

fn env() -> CheckEnv {
    crate::load::check_env(["platform".to_owned()])
}

const GOOD: &str = r#"kind: runbook
name: move-event
description: Move the event.
owner: sre
trigger:
  alerts:
    - alertname: ListenerCapacityBreachPredicted
      matchers: ['severity="critical"', 'room=~"main|backup"']
inputs:
  event:
    type: string
    from: alert.labels.event
    default: launch
  capacity:
    type: integer
    default: 1500000
policy:
  concurrency_key: "event/{{ inputs.event }}"
  cooldown: 15m
steps:
  - id: create_room
    action: http
    with:
      target: platform
      method: POST
      path: /api/v1/rooms
      body: {account: cohost, capacity: "{{ inputs.capacity }}"}
      capture: {room: /room/id}
    retries: {attempts: 3, backoff: 2s}
  - id: move
    action: http
    with:
      target: platform
      method: POST
      path: "/api/v1/events/{{ inputs.event }}/move"
      body: {room: "{{ steps.create_room.room }}"}
  - id: tell
    action: chat
    when: steps.move.status == 200
    with:
      text: "Moved to {{ steps.create_room.room }}"
"#;

#[test]
fn a_good_runbook_loads() {
    let rb = parse_runbook("rb.yaml", GOOD, &env()).unwrap();
    assert_eq!(rb.name, "move-event");
    assert_eq!(rb.steps.len(), 3);
    assert_eq!(rb.steps[0].retries, 3);
    assert_eq!(rb.cooldown, PromDuration::from_secs(900));
    assert_eq!(rb.steps[1].pos.map(|p| p.line), Some(30));
    let labels: Labels = [
        ("alertname", "ListenerCapacityBreachPredicted"),
        ("severity", "critical"),
        ("room", "main"),
    ]
    .into_iter()
    .collect();
    assert!(rb.matches_alert(&labels));
    let other = labels.clone().with("room", "elsewhere");
    assert!(!rb.matches_alert(&other));
    let wrong_name = labels.with("alertname", "Other");
    assert!(!rb.matches_alert(&wrong_name));
}

#[test]
fn every_error_is_reported_with_its_location() {
    let bad = r#"kind: runbook
name: Bad_Name
trigger:
  alerts:
    - alertname: X
      matchers: ['severity=~"("']
inputs:
  event: {type: string, default: 3}
policy:
  cooldown: 10 minutes
steps:
  - id: first
    action: htp
    with: {target: platform, path: /x}
  - id: second
    action: http
    with:
      target: nowhere
      path: "/events/{{ inputs.evnt }}"
      body: {room: "{{ steps.third.room }}"}
    timeout: 0s
  - id: third
    action: chat
    with: {text: "{{ steps.nope.x }} {{ foo }}"}
  - id: third
    action: wait
    with: {duration: 5x}
"#;
    let errs = parse_runbook("bad.yaml", bad, &env()).unwrap_err();
    let lines: Vec<String> = errs
        .clone()
        .sorted()
        .iter()
        .map(ToString::to_string)
        .collect();
    let expect = [
        "bad.yaml:2:7: name: invalid name",
        "bad.yaml:6:",
        "bad.yaml:8:",
        "bad.yaml:10:13: policy.cooldown: invalid duration",
        "bad.yaml:13:13: steps[0].action: unknown action \"htp\" (did you mean `http`?)",
        "steps[1].with.target: unknown target \"nowhere\"; known targets: platform",
        "steps[1].with.path: unknown input `evnt` (did you mean `inputs.event`?)",
        "steps[1].with.body.room: step `third` runs later",
        "bad.yaml:21:14: steps[1].timeout: must be greater than 0s",
        "steps[2].with.text: unknown step `nope`",
        "steps[2].with.text: unknown variable `foo`",
        "steps[3].id: duplicate step id \"third\"",
        "steps[3].with.duration: invalid duration",
    ];
    for e in expect {
        assert!(
            lines.iter().any(|l| l.contains(e)),
            "missing {e:?} in:\n{}",
            lines.join("\n")
        );
    }
    assert_eq!(lines.len(), expect.len(), "{}", lines.join("\n"));
    // Every diagnostic is located.
    assert!(errs.iter().all(|d| d.pos.is_some()), "{}", lines.join("\n"));
}

#[test]
fn unknown_fields_are_rejected_with_location() {
    let text = GOOD.replace("    retries: {attempts: 3, backoff: 2s}", "    retry: 3");
    let errs = parse_runbook("rb.yaml", &text, &env()).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(errs.0[0].message.contains("retry"), "{}", errs);
    assert_eq!(errs.0[0].pos.map(|p| p.line), Some(29), "{errs}");
    assert!(
        !errs.0[0].message.contains("line 29"),
        "location is not repeated: {errs}"
    );
}

#[test]
fn a_runbook_that_cannot_start_is_an_error() {
    let text = "kind: runbook\nname: idle\nsteps:\n  - id: a\n    action: wait\n    with: {duration: 1s}\n";
    let errs = parse_runbook("idle.yaml", text, &env()).unwrap_err();
    assert!(errs.to_string().contains("can never start"), "{errs}");
}

#[test]
fn duplicate_names_across_files_and_dispatch_order() {
    let a = GOOD.replace("name: move-event", "name: b-second");
    let b = GOOD.replace("name: move-event", "name: a-first");
    let c = GOOD.replace("name: move-event", "name: z-urgent\npriority: 1");
    let files = vec![
        ("a.yaml".to_owned(), a.clone()),
        ("b.yaml".to_owned(), b),
        ("c.yaml".to_owned(), c),
    ];
    let rbs = load_runbooks(&files, &env()).unwrap();
    let names: Vec<&str> = rbs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["z-urgent", "a-first", "b-second"]);
    let dup = vec![("a.yaml".to_owned(), a.clone()), ("d.yaml".to_owned(), a)];
    let errs = load_runbooks(&dup, &env()).unwrap_err();
    assert!(
        errs.to_string().contains("already used by a.yaml"),
        "{errs}"
    );
}

#[test]
fn inputs_coerce_from_label_strings() {
    assert_eq!(
        coerce(InputType::Integer, json!("1500000")),
        Ok(json!(1_500_000))
    );
    assert_eq!(coerce(InputType::Boolean, json!("true")), Ok(json!(true)));
    assert_eq!(coerce(InputType::String, json!(3)), Ok(json!("3")));
    assert!(
        coerce(InputType::Integer, json!("lots"))
            .unwrap_err()
            .contains("not a integer")
    );
}

// Regression: a `wait` of 1m under the default 30s step timeout failed
// every run of the shipped move runbook.
#[test]
fn wait_steps_get_a_timeout_that_outlasts_them() {
    let text = "kind: runbook\nname: w\ntrigger: {manual: true}\nsteps:\n  - id: settle\n    action: wait\n    with: {duration: 2m}\n";
    let rb = parse_runbook("w.yaml", text, &env()).unwrap();
    assert_eq!(rb.steps[0].timeout, PromDuration::from_secs(150));
    let short = text.replace(
        "with: {duration: 2m}",
        "with: {duration: 2m}\n    timeout: 1m",
    );
    let errs = parse_runbook("w.yaml", &short, &env()).unwrap_err();
    assert!(
        errs.to_string()
            .contains("w.yaml:8:14: steps[0].timeout: timeout 1m is not longer than the wait (2m)"),
        "{errs}"
    );
}

#[test]
fn safety_fields_load_and_their_mistakes_are_located() {
    let good = r#"kind: runbook
name: safe
trigger: {manual: true}
policy:
  approval: {role: responder, timeout: 5m, on_timeout: proceed}
  budget: {runs: 2, per: 1h}
steps:
  - id: create
    action: http
    approval: {users: [U0LEAD]}
    with: {target: platform, method: POST, path: /api/v1/rooms, capture: {room: /room/id}}
    on_failure: rollback
    rollback:
      action: http
      with: {target: platform, method: DELETE, path: "/api/v1/rooms/{{ steps.create.room }}"}
  - id: ask
    action: approval
    with: {timeout: 20m}
verify:
  on_failure: escalate
  steps:
    - id: check
      action: http
      with: {target: platform, path: "/api/v1/rooms/{{ steps.create.room }}"}
"#;
    let rb = parse_runbook("safe.yaml", good, &env()).unwrap();
    let a = rb.approval.as_ref().unwrap();
    assert_eq!(
        (a.role, a.timeout),
        (crate::roles::Role::Responder, PromDuration::from_secs(300))
    );
    assert_eq!(rb.budget.unwrap().runs, 2);
    assert_eq!(rb.steps[0].on_failure, OnFailure::Rollback);
    assert_eq!(rb.steps[0].approval.as_ref().unwrap().users, ["U0LEAD"]);
    assert_eq!(rb.steps[0].rollback.as_ref().unwrap().id, "rollback:create");
    // An approval step lasts until its deadline, and a bit.
    assert!(rb.steps[1].timeout > PromDuration::from_secs(1200));
    assert_eq!(
        rb.verify.as_ref().unwrap().on_failure,
        VerifyFailure::Escalate
    );

    let bad = r#"kind: runbook
name: unsafe
trigger: {manual: true}
policy:
  approval: {role: boss}
  budget: {runs: 0, per: 1h}
steps:
  - id: create
    action: http
    approval: {users: [ana]}
    with: {target: platform, method: POST, path: /a}
    rollback:
      action: http
      with: {target: platform, method: DELETE, path: "/a/{{ steps.later.x }}"}
  - id: later
    action: http
    with: {target: platform, path: /b}
verify:
  steps:
    - id: create
      action: wait
      with: {duration: 1s}
      rollback: {action: chat, with: {text: x}}
"#;
    let errs = parse_runbook("unsafe.yaml", bad, &env())
        .unwrap_err()
        .to_string();
    for want in [
        "unsafe.yaml:5:20: policy.approval.role: unknown role \"boss\"",
        "unsafe.yaml:6:11: policy.budget.runs: a budget of 0 runs",
        "steps[0].approval.users: \"ana\" is not a Slack user id",
        "steps[0].rollback.with.path: step `later` runs later",
        "unsafe.yaml:20:11: verify.steps[0].id: duplicate step id \"create\"",
        "verify.steps[0].rollback: verify steps only check",
    ] {
        assert!(errs.contains(want), "missing {want:?} in:\n{errs}");
    }
}

#[test]
fn a_wait_until_gets_a_timeout_that_outlasts_within() {
    let text = "kind: runbook\nname: w\ntrigger: {manual: true}\nsteps:\n  - id: recovered\n    action: wait\n    with: {until: 'up == 1', within: 5m}\n";
    let rb = parse_runbook("w.yaml", text, &env()).unwrap();
    assert_eq!(rb.steps[0].timeout, PromDuration::from_secs(330));
    let short = text.replace("within: 5m}", "within: 5m}\n    timeout: 5m");
    let errs = parse_runbook("w.yaml", &short, &env()).unwrap_err();
    assert!(
        errs.to_string()
            .contains("steps[0].timeout: timeout 5m is not longer than the wait (5m)"),
        "{errs}"
    );
    let bad = text.replace("'up == 1'", "'up =='");
    let errs = parse_runbook("w.yaml", &bad, &env()).unwrap_err();
    assert!(
        errs.to_string()
            .contains("steps[0].with.until: invalid PromQL"),
        "{errs}"
    );
}

#[test]
fn a_value_in_a_promql_string_without_the_filter_is_a_located_warning() {
    let text = r#"kind: runbook
name: verify-room
trigger: {manual: true}
inputs:
  room: {type: string, from: alert.labels.room}
steps:
  - id: load
    action: query
    with:
      expr: 'max(live_room_listeners{room="{{ inputs.room | promql }}"}) > {{ alert.value }}'
  - id: held
    action: wait
    with:
      until: 'max(live_room_up{room="{{ alert.labels.room }}"}) == 1'
      within: 1m
  - id: tell
    action: chat
    with: {text: 'room="{{ alert.labels.room }}"'}
"#;
    let rb = parse_runbook("rb.yaml", text, &env()).unwrap();
    let shown: Vec<String> = rb.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "rb.yaml:14:7: warning: steps[1].with.until: `{{ alert.labels.room }}` is inside a PromQL string without `| promql`: a value with a quote or a backslash would end the string and rewrite the query; end it with `| promql`, in double or single quotes"
        ]
    );
    // A warning does not fail the file, but comes with its errors.
    let broken = text.replace("within: 1m", "within: soon");
    let errs = parse_runbook("rb.yaml", &broken, &env()).unwrap_err();
    assert_eq!(errs.iter().filter(|d| d.warning).count(), 1, "{errs}");
    assert_eq!(errs.iter().filter(|d| !d.warning).count(), 1, "{errs}");
}

#[test]
fn a_value_in_silence_matchers_without_the_filter_is_a_located_warning() {
    let text = r#"kind: runbook
name: quiet
trigger: {manual: true}
inputs:
  event: {type: string, from: alert.labels.event}
steps:
  - id: ok
    action: silence
    with:
      matchers: 'alertname="RoomFull",event="{{ inputs.event | matcher }}"'
      duration: 30m
  - id: open
    action: silence
    with:
      matchers: 'alertname="RoomFull",event={{ inputs.event }}'
      duration: 30m
"#;
    let rb = parse_runbook("rb.yaml", text, &env()).unwrap();
    let shown: Vec<String> = rb.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(
        shown[0].starts_with("rb.yaml:15:7: warning: steps[1].with.matchers: `{{ inputs.event }}` is not inside double quotes with `| matcher`"),
        "{shown:?}"
    );
}

const GUARDED: &str = r#"kind: runbook
name: guarded
trigger: {manual: true}
steps:
  - id: before
    action: http
    with: {target: platform, path: /api/v1/events/launch, capture: {room: /event/room}}
  - id: move
    action: http
    with: {target: platform, method: POST, path: /api/v1/events/launch/move}
    rollback:
      guard:
        read:
          - id: origin
            action: http
            with: {target: platform, path: "/api/v1/rooms/{{ steps.before.room }}", capture: {capacity: /room/capacity}}
          - id: load
            action: query
            with: {expr: 'sum(live_room_listeners)'}
        holds: "steps.load.value < 0.9 * steps.origin.capacity"
        otherwise: "room {{ steps.before.room }} holds {{ steps.origin.capacity }}"
      action: http
      with: {target: platform, method: POST, path: /api/v1/events/launch/move, body: {room: "{{ steps.before.room }}", was: "{{ steps.origin.capacity }}"}}
"#;

#[test]
fn a_guarded_rollback_loads_with_its_reads_recorded_apart() {
    let rb = parse_runbook("g.yaml", GUARDED, &env()).unwrap_or_else(|e| panic!("{e}"));
    let undo = rb.steps[1].rollback.as_ref().unwrap();
    let g = undo.guard.as_ref().unwrap();
    let reads: Vec<(&str, &str)> = g
        .read
        .iter()
        .map(|r| (r.name.as_str(), r.step.id.as_str()))
        .collect();
    assert_eq!(
        reads,
        [("origin", "guard:move:origin"), ("load", "guard:move:load")]
    );
    assert_eq!(g.holds, "steps.load.value < 0.9 * steps.origin.capacity");
    assert!(rb.steps[1].guard.is_none());
}

fn guard_errors(text: &str) -> Vec<String> {
    parse_runbook("g.yaml", text, &env())
        .unwrap_err()
        .sorted()
        .iter()
        .filter(|d| !d.warning)
        .map(ToString::to_string)
        .collect()
}

/// `text`'s errors are `want`, in order: each the start of one.
fn assert_errors(text: &str, want: &[&str]) {
    let errs = guard_errors(text);
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    for (e, w) in errs.iter().zip(want) {
        assert!(e.starts_with(w), "{w:?} in {errs:#?}");
    }
}

#[test]
fn a_guard_anywhere_but_on_a_rollback_is_an_error() {
    let text = GUARDED.replace(
        "  - id: move\n",
        "  - id: look\n    action: chat\n    with: {text: hi}\n    guard: {holds: 'true', otherwise: x}\n  - id: move\n",
    ) + "verify:\n  steps:\n    - id: check\n      action: wait\n      with: {duration: 1s}\n      guard: {holds: 'true'}\n";
    assert_errors(
        &text,
        &[
            "g.yaml:11:12: steps[1].guard: a guard decides whether a rollback runs, so it goes under `rollback:`",
            "g.yaml:33:14: verify.steps[0].guard: a guard decides",
        ],
    );
}

#[test]
fn a_guard_read_that_could_act_is_an_error() {
    let text = GUARDED
        .replace(
            "with: {target: platform, path: \"/api/v1/rooms/",
            "with: {target: platform, method: POST, path: \"/api/v1/rooms/",
        )
        .replace(
            "action: query\n            with: {expr: 'sum(live_room_listeners)'}",
            "action: chat\n            with: {text: hi}",
        );
    assert_errors(
        &text,
        &[
            "g.yaml:16:19: steps[1].rollback.guard.read[0].with.method: method \"POST\" could change what the guard is there to judge; a guard only reads: `http` with method GET, or `query`",
            "g.yaml:18:21: steps[1].rollback.guard.read[1].action: `chat` is not a read",
        ],
    );
    // A method only a run would know could be anything.
    let templated = GUARDED.replace(
        "with: {target: platform, path: \"/api/v1/rooms/",
        "with: {target: platform, method: \"{{ steps.before.room }}\", path: \"/api/v1/rooms/",
    );
    assert_errors(
        &templated,
        &[
            "g.yaml:16:19: steps[1].rollback.guard.read[0].with.method: method \"{{ steps.before.room }}\" could change",
            // The action's own check says so too.
            "g.yaml:16:19: steps[1].rollback.guard.read[0].with.method: unknown method",
        ],
    );
}

#[test]
fn a_guard_needs_reads_holds_and_otherwise() {
    let start = GUARDED.find("        read:").unwrap();
    let end = GUARDED
        .find("      action: http\n      with: {target: platform, method: POST")
        .unwrap();
    let text = format!("{}        {{}}\n{}", &GUARDED[..start], &GUARDED[end..])
        .replace("      guard:\n        {}", "      guard: {}")
        .replace(", was: \"{{ steps.origin.capacity }}\"", "");
    assert_errors(
        &text,
        &[
            "g.yaml:12:14: steps[1].rollback.guard.read: a guard judges the platform as it is when the rollback is due",
            "g.yaml:12:14: steps[1].rollback.guard.holds: missing; a guard needs `holds`",
            "g.yaml:12:14: steps[1].rollback.guard.otherwise: missing; a guard needs `otherwise`",
        ],
    );
}

#[test]
fn what_a_guard_reads_is_checked_and_located() {
    let text = GUARDED
        .replace(
            "holds: \"steps.load.value < 0.9 * steps.origin.capacity\"",
            "holds: \"steps.load.value < 0.9 * steps.orign.capacity\"",
        )
        .replace(
            "holds {{ steps.origin.capacity }}",
            "holds {{ steps.origin.capacity ",
        );
    assert_errors(
        &text,
        &[
            "g.yaml:20:16: steps[1].rollback.guard.holds: unknown step `orign` (did you mean `steps.origin`?); earlier steps: before, move, origin, load",
            "g.yaml:21:20: steps[1].rollback.guard.otherwise: invalid template",
        ],
    );
}

#[test]
fn guard_reads_have_ids_unique_in_the_runbook_and_are_only_the_guards() {
    let text = GUARDED.replace("- id: load\n", "- id: before\n");
    assert_errors(
        &text,
        &[
            "g.yaml:17:17: steps[1].rollback.guard.read[1].id: duplicate step id \"before\"",
            "g.yaml:20:16: steps[1].rollback.guard.holds: unknown step `load`",
        ],
    );
    // A step cannot read what a guard read: it has not happened yet, and
    // may never.
    let text = GUARDED.replace(
        "path: /api/v1/events/launch/move}\n    rollback:",
        "path: \"/api/v1/events/{{ steps.origin.capacity }}/move\"}\n    rollback:",
    );
    assert_errors(
        &text,
        &[
            "g.yaml:10:11: steps[1].with.path: step `origin` is a read of the guard on `move`'s rollback",
        ],
    );
}

/// The model names no action: what it checks of a step (its parameters,
/// how long it lasts, whether a guard may use it, what it calls) comes
/// from the catalog it is handed. Here, one made up for the test.
mod catalog {
    use super::*;
    use crate::runbook::literals::Fixture;
    use crate::runbook::spec::{ActionSpec, Callee, Catalog, Lasts, Reads};

    struct Nap;
    impl ActionSpec for Nap {
        fn name(&self) -> &'static str {
            "nap"
        }
        fn check(&self, with: &Json, _env: &CheckEnv) -> Vec<(String, String)> {
            match with.get("for") {
                Some(Json::String(_)) => vec![],
                _ => vec![("for".into(), "say how long".into())],
            }
        }
        fn lasts(&self, with: &Json) -> Lasts {
            with.get("for")
                .and_then(Json::as_str)
                .and_then(|d| PromDuration::parse(d).ok())
                .map_or(Lasts::Unknown, Lasts::For)
        }
        fn reads(&self, _with: &Json) -> Reads {
            Reads::Only
        }
    }

    struct Delegate;
    impl ActionSpec for Delegate {
        fn name(&self) -> &'static str {
            "delegate"
        }
        fn check(&self, _with: &Json, _env: &CheckEnv) -> Vec<(String, String)> {
            vec![]
        }
        fn callee(&self, with: &Json) -> Option<Callee> {
            Some(Callee {
                runbook: with.get("to")?.as_str()?.to_owned(),
                inputs: Default::default(),
            })
        }
    }

    struct Made;
    impl Catalog for Made {
        fn find(&self, name: &str) -> Option<&'static dyn ActionSpec> {
            match name {
                "nap" => Some(&Nap),
                "delegate" => Some(&Delegate),
                _ => None,
            }
        }
        fn names(&self) -> Vec<&'static str> {
            vec!["delegate", "nap"]
        }
    }

    static NONE: std::sync::LazyLock<Fixture> = std::sync::LazyLock::new(Fixture::default);

    fn made() -> CheckEnv {
        CheckEnv::new(&Made, &NONE, [])
    }

    fn runbook(steps: &str) -> String {
        format!(
            "kind: runbook\nname: r\ndescription: d\nowner: o\ntrigger: {{manual: true}}\nsteps:\n{steps}"
        )
    }

    fn errors(text: &str) -> Vec<String> {
        match parse_runbook("r.yaml", text, &made()) {
            Ok(_) => vec![],
            Err(d) => d
                .iter()
                .filter(|d| !d.warning)
                .map(ToString::to_string)
                .collect(),
        }
    }

    #[test]
    fn a_step_is_checked_by_its_spec() {
        let e = errors(&runbook("  - id: a\n    action: nap\n    with: {}\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("steps[0].with.for: say how long"), "{e:?}");
        // The executor's actions are not in this catalog.
        let e = errors(&runbook("  - id: a\n    action: http\n    with: {}\n"));
        assert!(
            e[0].contains(r#"unknown action "http"; expected one of: delegate, nap"#),
            "{e:?}"
        );
    }

    #[test]
    fn how_long_a_step_lasts_bounds_its_timeout() {
        let e = errors(&runbook(
            "  - id: a\n    action: nap\n    with: {for: 10m}\n    timeout: 5m\n",
        ));
        assert!(
            e.iter()
                .any(|e| e.contains("timeout 5m is not longer than the wait (10m)")),
            "{e:?}"
        );
        let rb = parse_runbook(
            "r.yaml",
            &runbook("  - id: a\n    action: nap\n    with: {for: 10m}\n"),
            &made(),
        )
        .unwrap();
        assert!(rb.steps[0].timeout > PromDuration::from_secs(600));
        assert_eq!(rb.steps[0].spec.name(), "nap");
    }

    #[test]
    fn a_guard_reads_with_what_its_spec_says_only_reads() {
        let rollback = |action: &str| {
            runbook(&format!(
                "  - id: a\n    action: nap\n    with: {{for: 1s}}\n    rollback:\n      guard:\n        read:\n          - id: r\n            action: {action}\n            with: {{for: 1s, to: x}}\n        holds: 'true'\n        otherwise: held\n      action: nap\n      with: {{for: 1s}}\n"
            ))
        };
        assert_eq!(errors(&rollback("nap")), Vec::<String>::new());
        let e = errors(&rollback("delegate"));
        assert!(
            e.iter().any(|e| e.contains("`delegate` is not a read")),
            "{e:?}"
        );
    }

    #[test]
    fn what_a_step_calls_comes_from_its_spec() {
        let files = [(
            "r.yaml".to_owned(),
            runbook("  - id: a\n    action: delegate\n    with: {to: nowhere}\n"),
        )];
        let e = load_runbooks(&files, &made()).unwrap_err().to_string();
        assert!(e.contains("nowhere"), "{e}");
    }
}
