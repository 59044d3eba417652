//! Whole rule files driven through the engine with explicit time: the live
//! event rules the bot ships, `for`/`keep_firing_for` timing, templates,
//! ALERTS series, errors that do not stop other rules, and state snapshots.

use firebreak::clock::Millis;
use firebreak::labels::Labels;
use firebreak::promql::{Value, eval_instant, parse};
use firebreak::rules::{AlertEventKind, AlertState, RuleEngine, parse_rule_file};
use firebreak::tsdb::SeriesStore;

const S: Millis = 1000;
/// Minute-aligned so group slots are easy to read.
const T0: Millis = 1_780_000_020_000;

const LIVE_EVENT_RULES: &str = r#"groups:
- name: live-event
  interval: 15s
  rules:
  - alert: ListenerCapacityBreachPredicted
    expr: predict_linear(live_room_listeners[2m], 600) > on(room, account) group_left live_room_capacity * 0.95
    for: 30s
    labels: {severity: critical}
    annotations:
      summary: 'Room {{ $labels.room }} will pass 95% of capacity within 10 minutes (projected {{ $value | humanize }} listeners)'
  - alert: JoinFailureRatioHigh
    expr: sum by (room, account) (rate(live_join_failures_total[1m])) / sum by (room, account) (rate(live_join_requests_total[1m])) > 0.05
    for: 1m
  - alert: StreamLatencyP99High
    expr: histogram_quantile(0.99, sum by (le, room, account) (rate(live_stream_latency_seconds_bucket[1m]))) > 2
    for: 1m
  - alert: SpeakerFeedback
    expr: live_speaker_feedback_level > 0.5 unless on(room, speaker) live_speaker_muted == 1
    for: 15s
  - alert: TargetDown
    expr: up == 0
    for: 1m
"#;

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().copied().collect()
}

/// The platform at `t` seconds after T0.
fn scrape(store: &mut SeriesStore, t: i64) {
    let ts = T0 + t * S;
    let room = [("room", "main"), ("account", "acme")];
    let with = |name: &str, extra: &[(&str, &str)]| {
        let mut v: Vec<(&str, &str)> = room.to_vec();
        v.push(("__name__", name));
        v.extend_from_slice(extra);
        l(&v)
    };
    let tf = t as f64;
    // Listeners grow 1/s until 60s, then most leave.
    let listeners = if t < 60 { 500.0 + tf } else { 100.0 };
    let samples = vec![
        (with("live_room_capacity", &[]), 1000.0),
        (
            with("live_room_listeners", &[("instance", "sfu-1")]),
            listeners,
        ),
        // 10% of joins fail: failures 10/s, requests 100/s.
        (with("live_join_failures_total", &[]), 1000.0 + 10.0 * tf),
        (with("live_join_requests_total", &[]), 10_000.0 + 100.0 * tf),
        // Latency buckets per second: 1, 2, 5, 10, 10.
        (
            with("live_stream_latency_seconds_bucket", &[("le", "0.5")]),
            tf,
        ),
        (
            with("live_stream_latency_seconds_bucket", &[("le", "1")]),
            2.0 * tf,
        ),
        (
            with("live_stream_latency_seconds_bucket", &[("le", "2.5")]),
            5.0 * tf,
        ),
        (
            with("live_stream_latency_seconds_bucket", &[("le", "5")]),
            10.0 * tf,
        ),
        (
            with("live_stream_latency_seconds_bucket", &[("le", "+Inf")]),
            10.0 * tf,
        ),
        // Speaker s1 feeds back and is muted at 30s; s2 is muted throughout.
        (
            with("live_speaker_feedback_level", &[("speaker", "s1")]),
            0.8,
        ),
        (
            with("live_speaker_feedback_level", &[("speaker", "s2")]),
            0.9,
        ),
        (
            with(
                "live_speaker_muted",
                &[("speaker", "s1"), ("instance", "mixer")],
            ),
            if t >= 30 { 1.0 } else { 0.0 },
        ),
        (
            with(
                "live_speaker_muted",
                &[("speaker", "s2"), ("instance", "mixer")],
            ),
            1.0,
        ),
    ];
    store.ingest_scrape("platform", ts, samples);
    // sfu-2 is down until 90s.
    store
        .append(
            l(&[("__name__", "up"), ("job", "sfu"), ("instance", "sfu-1")]),
            ts,
            1.0,
        )
        .unwrap();
    store
        .append(
            l(&[("__name__", "up"), ("job", "sfu"), ("instance", "sfu-2")]),
            ts,
            if t < 90 { 0.0 } else { 1.0 },
        )
        .unwrap();
}

#[test]
fn shipped_live_event_rules_end_to_end() {
    let file = parse_rule_file("live-event.yml", LIVE_EVENT_RULES).unwrap();
    let mut engine = RuleEngine::new(file.groups, l(&[("cluster", "eu1")]), T0);
    let mut store = SeriesStore::new(3600 * S);
    let mut events = Vec::new();
    for t in (0..=180).step_by(15) {
        scrape(&mut store, t);
        assert_eq!(engine.next_due(), T0 + t * S);
        let out = engine.eval_due(&mut store, T0 + t * S);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.evaluated, vec![("live-event".to_owned(), T0 + t * S)]);
        for e in out.events {
            events.push(((e.at - T0) / S, e.alert.rule.clone(), e.kind, e));
        }
    }
    let summary: Vec<(i64, &str, AlertEventKind)> = events
        .iter()
        .map(|(t, r, k, _)| (*t, r.as_str(), *k))
        .collect();
    use AlertEventKind::*;
    assert_eq!(
        summary,
        vec![
            (0, "SpeakerFeedback", Pending),
            (0, "TargetDown", Pending),
            (15, "ListenerCapacityBreachPredicted", Pending),
            (15, "JoinFailureRatioHigh", Pending),
            (15, "StreamLatencyP99High", Pending),
            (15, "SpeakerFeedback", Firing),
            (30, "SpeakerFeedback", Resolved),
            (45, "ListenerCapacityBreachPredicted", Firing),
            // The listeners drop at 60s: the fitted line now slopes down.
            (60, "ListenerCapacityBreachPredicted", Resolved),
            (60, "TargetDown", Firing),
            (75, "JoinFailureRatioHigh", Firing),
            (75, "StreamLatencyP99High", Firing),
            (90, "TargetDown", Resolved),
        ]
    );

    // Labels and annotations of the capacity alert: two samples 1/s apart
    // at 15s predict 515 + 600 = 1115.
    let breach = &events[2].3.alert;
    assert_eq!(
        breach.labels.to_string(),
        r#"{account="acme", alertname="ListenerCapacityBreachPredicted", instance="sfu-1", room="main", severity="critical"}"#
    );
    assert_eq!(
        breach.annotations["summary"],
        "Room main will pass 95% of capacity within 10 minutes (projected 1.115k listeners)"
    );
    assert!((breach.value - 1115.0).abs() < 1e-9);
    // At 45s the prediction is 545 + 600.
    assert_eq!(
        events[7].3.alert.annotations["summary"],
        "Room main will pass 95% of capacity within 10 minutes (projected 1.145k listeners)"
    );
    assert_eq!(events[7].3.alert.active_at, T0 + 15 * S);
    assert_eq!(events[7].3.alert.fired_at, Some(T0 + 45 * S));

    // The join ratio is 0.1; p99 latency is 2.5 + 2.5 * (9.9 - 5) / 5.
    assert!((events[3].3.alert.value - 0.1).abs() < 1e-9);
    assert!((events[4].3.alert.value - 4.95).abs() < 1e-9);
    assert_eq!(
        events[3].3.alert.labels.to_string(),
        r#"{account="acme", alertname="JoinFailureRatioHigh", room="main"}"#
    );
    // Only the unmuted speaker alerted.
    assert_eq!(events[0].3.alert.labels.get("speaker"), Some("s1"));
    assert_eq!(
        events[1].3.alert.labels.to_string(),
        r#"{alertname="TargetDown", instance="sfu-2", job="sfu"}"#
    );
    let resolved = &events[12].3.alert;
    assert_eq!(resolved.state, AlertState::Inactive);
    assert_eq!(resolved.resolved_at, Some(T0 + 90 * S));

    // Join ratio and latency alerts are still firing at the end.
    let mut active: Vec<String> = engine
        .active_alerts()
        .iter()
        .map(|a| format!("{}:{:?}", a.rule, a.state))
        .collect();
    active.sort();
    assert_eq!(
        active,
        vec!["JoinFailureRatioHigh:Firing", "StreamLatencyP99High:Firing"]
    );
}

fn instant(store: &SeriesStore, q: &str, at: Millis) -> Vec<(String, f64)> {
    match eval_instant(&parse(q).unwrap(), store, at).unwrap() {
        Value::Vector(v) => v
            .into_iter()
            .map(|s| (s.labels.to_string(), s.value))
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn alerts_series_are_written_and_end_when_resolved() {
    let file = parse_rule_file("live-event.yml", LIVE_EVENT_RULES).unwrap();
    let mut engine = RuleEngine::new(file.groups, Labels::new(), T0);
    let mut store = SeriesStore::new(3600 * S);
    for t in (0..=90).step_by(15) {
        scrape(&mut store, t);
        engine.eval_due(&mut store, T0 + t * S);
        let q = r#"ALERTS{alertname="TargetDown"}"#;
        let got = instant(&store, q, T0 + t * S);
        match t {
            0..=45 => {
                assert_eq!(got.len(), 1, "{t}: {got:?}");
                assert!(got[0].0.contains(r#"alertstate="pending""#), "{got:?}");
            }
            60..=75 => {
                // The pending series was marked stale when it turned firing.
                assert_eq!(got.len(), 1, "{t}: {got:?}");
                assert!(got[0].0.contains(r#"alertstate="firing""#), "{got:?}");
                let fs = instant(
                    &store,
                    r#"ALERTS_FOR_STATE{alertname="TargetDown"}"#,
                    T0 + t * S,
                );
                assert_eq!(fs[0].1, T0 as f64 / 1000.0);
            }
            _ => assert!(got.is_empty(), "{t}: {got:?}"),
        }
    }
}

#[test]
fn for_and_keep_firing_for_timing() {
    let rules = r#"groups:
- name: timing
  interval: 10s
  rules:
  - alert: Flappy
    expr: signal > 0
    for: 20s
    keep_firing_for: 30s
    labels:
      team: '{{ $labels.team | toUpper }}'
    annotations:
      description: '{{ $labels.team }} in {{ $externalLabels.cluster }}: {{ printf "%.1f" $value }}'
"#;
    let file = parse_rule_file("t.yml", rules).unwrap();
    let mut engine = RuleEngine::new(file.groups, l(&[("cluster", "eu1")]), T0);
    let mut store = SeriesStore::new(3600 * S);
    // The signal is on for 0..=30s, off 40..=60s, on at 70s, then off.
    let on = |t: i64| t <= 30 || t == 70;
    let mut log = Vec::new();
    for t in (0..=150).step_by(10) {
        store
            .append(
                l(&[("__name__", "signal"), ("team", "sre")]),
                T0 + t * S,
                if on(t) { 2.5 } else { 0.0 },
            )
            .unwrap();
        for e in engine.eval_due(&mut store, T0 + t * S).events {
            log.push((t, e.kind));
            if e.kind == AlertEventKind::Firing {
                assert_eq!(e.alert.labels.get("team"), Some("SRE"));
                assert_eq!(e.alert.annotations["description"], "sre in eu1: 2.5");
            }
        }
    }
    use AlertEventKind::*;
    // Pending at 0, firing at 20 (for: 20s). Off from 40s: kept firing
    // while less than 30s since 40s (40, 50, 60), back on at 70 (which
    // resets keep_firing), off again from 80: resolved at 110.
    assert_eq!(log, vec![(0, Pending), (20, Firing), (110, Resolved)]);
}

#[test]
fn late_calls_evaluate_once_at_the_latest_slot() {
    let rules =
        "groups:\n- name: g\n  interval: 15s\n  rules:\n  - record: x:sum\n    expr: sum(x)\n";
    let file = parse_rule_file("r.yml", rules).unwrap();
    let mut engine = RuleEngine::new(file.groups, Labels::new(), T0);
    let mut store = SeriesStore::new(3600 * S);
    store
        .append(l(&[("__name__", "x"), ("i", "1")]), T0, 3.0)
        .unwrap();
    store
        .append(l(&[("__name__", "x"), ("i", "2")]), T0, 4.0)
        .unwrap();
    assert!(engine.eval_due(&mut store, T0 - 1).evaluated.is_empty());
    let out = engine.eval_due(&mut store, T0 + 50 * S);
    // Slots 0, 15, 30, 45 were due; only 45 runs.
    assert_eq!(out.evaluated, vec![("g".to_owned(), T0 + 45 * S)]);
    assert_eq!(out.missed, 3);
    assert_eq!(engine.next_due(), T0 + 60 * S);
    assert_eq!(
        instant(&store, "x:sum", T0 + 45 * S),
        vec![("x:sum{}".to_owned(), 7.0)]
    );
}

#[test]
fn recording_rules_feed_later_rules_and_failures_are_isolated() {
    let rules = r#"groups:
- name: g
  interval: 1m
  labels: {source: firebreak}
  rules:
  - record: job:req:sum
    expr: sum by (job) (req)
    labels: {tier: agg}
  - alert: Broken
    expr: req / on(job) req
  - alert: HighTraffic
    expr: job:req:sum > 5
    annotations:
      summary: '{{ $labels.job }} {{ $value }} {{ $labels.tier }}'
"#;
    let file = parse_rule_file("r.yml", rules).unwrap();
    let mut engine = RuleEngine::new(file.groups, Labels::new(), T0);
    let mut store = SeriesStore::new(3600 * S);
    store
        .append(
            l(&[("__name__", "req"), ("job", "api"), ("i", "1")]),
            T0,
            3.0,
        )
        .unwrap();
    store
        .append(
            l(&[("__name__", "req"), ("job", "api"), ("i", "2")]),
            T0,
            4.0,
        )
        .unwrap();
    let out = engine.eval_due(&mut store, T0);
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert_eq!(out.errors[0].rule, "Broken");
    assert!(out.errors[0].message.contains("many"), "{:?}", out.errors);
    assert_eq!(out.events.len(), 1);
    let a = &out.events[0].alert;
    assert_eq!(a.rule, "HighTraffic");
    assert_eq!(a.annotations["summary"], "api 7 agg");
    assert_eq!(
        a.labels.to_string(),
        r#"{alertname="HighTraffic", job="api", source="firebreak", tier="agg"}"#
    );
}

#[test]
fn duplicate_alert_labelsets_are_an_error() {
    let rules = r#"groups:
- name: g
  rules:
  - alert: Dup
    expr: up == 0
    labels: {instance: same}
"#;
    let file = parse_rule_file("r.yml", rules).unwrap();
    let mut engine = RuleEngine::new(file.groups, Labels::new(), T0);
    let mut store = SeriesStore::new(3600 * S);
    store
        .append(l(&[("__name__", "up"), ("instance", "a")]), T0, 0.0)
        .unwrap();
    store
        .append(l(&[("__name__", "up"), ("instance", "b")]), T0, 0.0)
        .unwrap();
    let out = engine.eval_due(&mut store, T0);
    assert!(out.events.is_empty());
    assert!(
        out.errors[0]
            .message
            .contains("vector contains metrics with the same labelset after applying alert labels"),
        "{:?}",
        out.errors
    );
}

#[test]
fn group_limit_is_enforced() {
    let rules = "groups:\n- name: g\n  limit: 1\n  rules:\n  - alert: Down\n    expr: up == 0\n";
    let file = parse_rule_file("r.yml", rules).unwrap();
    let mut engine = RuleEngine::new(file.groups, Labels::new(), T0);
    let mut store = SeriesStore::new(3600 * S);
    store
        .append(l(&[("__name__", "up"), ("instance", "a")]), T0, 0.0)
        .unwrap();
    store
        .append(l(&[("__name__", "up"), ("instance", "b")]), T0, 0.0)
        .unwrap();
    let out = engine.eval_due(&mut store, T0);
    assert_eq!(out.errors[0].message, "exceeded limit of 1 with 2 alerts");
    assert!(engine.active_alerts().is_empty());
}

#[test]
fn state_snapshot_round_trips() {
    let rules = "groups:\n- name: g\n  interval: 15s\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 1m\n";
    let file = parse_rule_file("r.yml", rules).unwrap();
    let mut engine = RuleEngine::new(file.groups.clone(), Labels::new(), T0);
    let mut store = SeriesStore::new(3600 * S);
    let up = l(&[("__name__", "up"), ("instance", "a")]);
    for t in [0, 15, 30] {
        store.append(up.clone(), T0 + t * S, 0.0).unwrap();
        engine.eval_due(&mut store, T0 + t * S);
    }
    let snap = engine.snapshot_state(T0 + 30 * S);
    let json = serde_json::to_string(&snap).unwrap();
    let back: firebreak::rules::StateSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap);

    // With Prometheus's default 10m grace period, a `for: 1m` alert starts
    // afresh after a restart.
    let mut restarted = RuleEngine::new(file.groups.clone(), Labels::new(), T0 + 45 * S);
    assert_eq!(restarted.restore_state(back.clone(), T0 + 45 * S), 0);

    // Without a grace period it is picked up, and the 15s of downtime do
    // not count towards its `for`: it fires at 75s, not 60s.
    let opts = firebreak::rules::RestoreOptions {
        outage_tolerance_ms: 3600 * S,
        grace_period_ms: 0,
    };
    let mut restarted = RuleEngine::new(file.groups, Labels::new(), T0 + 45 * S);
    assert_eq!(restarted.restore_state_with(back, T0 + 45 * S, opts), 1);
    for t in [45, 60] {
        store.append(up.clone(), T0 + t * S, 0.0).unwrap();
        assert!(
            restarted.eval_due(&mut store, T0 + t * S).events.is_empty(),
            "not firing at {t}s"
        );
    }
    store.append(up.clone(), T0 + 75 * S, 0.0).unwrap();
    let out = restarted.eval_due(&mut store, T0 + 75 * S);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].kind, AlertEventKind::Firing);
    assert_eq!(out.events[0].alert.active_at, T0 + 15 * S);
}
