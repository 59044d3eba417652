//! Alerts pushed to firebreak instead of evaluated by it: Alertmanager's
//! webhook notification (payload version 4), and the body of Alertmanager's
//! API v2 `POST /api/v2/alerts`, which Prometheus sends to every
//! Alertmanager it knows. Reading and checking only (no I/O, no clock):
//! the HTTP edge hands the bytes here, and [`crate::rules::pushed`] keeps
//! the alerts' state.
//!
//! Unknown fields are accepted and reported as warnings rather than
//! refused: Alertmanager has added fields to version 4 before
//! (`truncatedAlerts`), and refusing a notification would lose its alerts
//! over a field firebreak does not read.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::clock::Millis;
use crate::labels::Labels;
use crate::limits::{
    MAX_ALERT_ANNOTATIONS, MAX_ALERT_LABELS, MAX_ANNOTATION_BYTES, MAX_LABEL_NAME_BYTES,
    MAX_LABEL_VALUE_BYTES, clip_list, head,
};

pub use crate::rules::pushed::{Incoming, Lifecycle};

/// A request firebreak could not read, with every problem found.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}", problems.join("; "))]
pub struct Refused {
    /// Each `path: what is wrong, and what would be valid`, such as
    /// `alerts[2].labels: no alertname label; ...`; a JSON syntax error
    /// says `line L column C`.
    pub problems: Vec<String>,
}

/// What was read from one request.
#[derive(Debug, Default)]
pub struct Read {
    pub alerts: Vec<Incoming>,
    /// Fields firebreak does not know, by path (`alerts[0].silenceURL`).
    pub ignored: Vec<String>,
}

type Extra = BTreeMap<String, serde_json::Value>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawWebhook {
    version: Option<String>,
    #[serde(default)]
    receiver: String,
    alerts: Option<Vec<RawWebhookAlert>>,
    #[serde(flatten)]
    extra: Extra,
}

/// Version 4 fields firebreak does not need, so not reported as unknown:
/// it groups alerts by its own `incidents.group_by`, and a notification's
/// status is its alerts' statuses.
const WEBHOOK_UNREAD: &[&str] = &[
    "status",
    "groupKey",
    "truncatedAlerts",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
];
const WEBHOOK_ALERT_UNREAD: &[&str] = &["fingerprint"];

/// The names in `extra` that are not in `unread`, each under `at`.
fn unknown(extra: &Extra, unread: &[&str], at: &str) -> Vec<String> {
    extra
        .keys()
        .filter(|k| !unread.contains(&k.as_str()))
        .map(|k| {
            if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            }
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawWebhookAlert {
    status: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPostable {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

/// The JSON error, located: `line 3 column 14: invalid type: ...`.
fn json_error(e: serde_json::Error, what: &str) -> Refused {
    let msg = e.to_string();
    // serde_json appends " at line L column C"; say where first.
    let problem = match msg.rsplit_once(" at line ") {
        Some((m, at)) => format!("line {at}: {m} ({what})"),
        None => format!("{msg} ({what})"),
    };
    Refused {
        problems: vec![problem],
    }
}

/// Reads an Alertmanager webhook notification (version 4).
pub fn read_webhook(body: &[u8]) -> Result<Read, Refused> {
    let raw: RawWebhook = serde_json::from_slice(body).map_err(|e| {
        json_error(
            e,
            "expected Alertmanager's webhook payload: {\"version\": \"4\", \"alerts\": [...], ...}",
        )
    })?;
    let mut problems = Vec::new();
    let mut out = Read {
        alerts: Vec::new(),
        ignored: unknown(&raw.extra, WEBHOOK_UNREAD, ""),
    };
    match raw.version.as_deref() {
        Some("4") => {}
        Some(v) => problems.push(format!(
            "version: {v:?} is not a payload version firebreak reads; Alertmanager's webhook sends \"4\""
        )),
        None => problems.push(
            "version: missing; Alertmanager's webhook sends \"version\": \"4\" (is this the API v2 body? that goes to /api/v2/alerts)".into(),
        ),
    }
    let Some(alerts) = raw.alerts else {
        problems.push("alerts: missing; a notification lists its alerts".into());
        return Err(Refused { problems });
    };
    let via = if raw.receiver.is_empty() {
        "alertmanager".to_owned()
    } else {
        format!("alertmanager (receiver {})", raw.receiver)
    };
    for (i, a) in alerts.into_iter().enumerate() {
        let at = format!("alerts[{i}]");
        out.ignored
            .extend(unknown(&a.extra, WEBHOOK_ALERT_UNREAD, &at));
        let resolved = match a.status.as_deref() {
            Some("firing") => Some(false),
            Some("resolved") => Some(true),
            Some(s) => {
                problems.push(format!(
                    "{at}.status: {s:?} is not a status; expected \"firing\" or \"resolved\""
                ));
                None
            }
            None => {
                problems.push(format!(
                    "{at}.status: missing; expected \"firing\" or \"resolved\""
                ));
                None
            }
        };
        let checked = check(
            &at,
            a.labels,
            &a.annotations,
            a.starts_at.as_deref(),
            a.ends_at.as_deref(),
            &mut problems,
        );
        if let (Some((labels, starts_at, _)), Some(resolved)) = (checked, resolved) {
            out.alerts.push(Incoming {
                labels,
                annotations: a.annotations,
                starts_at,
                lifecycle: Lifecycle::Told { resolved },
                via: via.clone(),
                generator_url: a.generator_url.filter(|u| !u.is_empty()),
            });
        }
    }
    if problems.is_empty() {
        out.ignored = clip_list(out.ignored, "fields");
        Ok(out)
    } else {
        Err(Refused {
            problems: clip_list(problems, "problems"),
        })
    }
}

/// Reads the body of `POST /api/v2/alerts`: a JSON array of alerts, each
/// `{labels, annotations, startsAt, endsAt, generatorURL}`.
pub fn read_postable(body: &[u8]) -> Result<Read, Refused> {
    let raw: Vec<RawPostable> = serde_json::from_slice(body).map_err(|e| {
        json_error(
            e,
            "expected Alertmanager's API v2 alerts: [{\"labels\": {...}, \"annotations\": {...}, \"startsAt\": ..., \"endsAt\": ...}]",
        )
    })?;
    let mut problems = Vec::new();
    let mut out = Read::default();
    for (i, a) in raw.into_iter().enumerate() {
        let at = format!("[{i}]");
        out.ignored.extend(unknown(&a.extra, &[], &at));
        if let Some((labels, starts_at, ends_at)) = check(
            &at,
            a.labels,
            &a.annotations,
            a.starts_at.as_deref(),
            a.ends_at.as_deref(),
            &mut problems,
        ) {
            out.alerts.push(Incoming {
                labels,
                annotations: a.annotations,
                starts_at,
                lifecycle: Lifecycle::Until(ends_at),
                via: "api".into(),
                generator_url: a.generator_url.filter(|u| !u.is_empty()),
            });
        }
    }
    if problems.is_empty() {
        out.ignored = clip_list(out.ignored, "fields");
        Ok(out)
    } else {
        Err(Refused {
            problems: clip_list(problems, "problems"),
        })
    }
}

/// Checks what both formats share: labels (Prometheus label names, an
/// `alertname` to match runbooks on), annotations within bounds, and times
/// in RFC 3339. Labels are gathered first and packed once: one pushed
/// alert may carry many, and packing per label would cost O(n²).
fn check(
    at: &str,
    raw: BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    starts_at: Option<&str>,
    ends_at: Option<&str>,
    problems: &mut Vec<String>,
) -> Option<(Labels, Option<Millis>, Option<Millis>)> {
    let before = problems.len();
    if raw.len() > MAX_ALERT_LABELS {
        problems.push(format!(
            "{at}.labels: {} labels; firebreak takes at most {MAX_ALERT_LABELS} per alert",
            raw.len()
        ));
    }
    if annotations.len() > MAX_ALERT_ANNOTATIONS {
        problems.push(format!(
            "{at}.annotations: {} annotations; firebreak takes at most {MAX_ALERT_ANNOTATIONS} per alert",
            annotations.len()
        ));
    }
    for (k, v) in annotations {
        if v.len() > MAX_ANNOTATION_BYTES {
            problems.push(format!(
                "{at}.annotations.{}: {} bytes; an annotation is at most {MAX_ANNOTATION_BYTES}",
                shown_name(k),
                v.len()
            ));
        }
    }
    let mut pairs = Vec::with_capacity(raw.len().min(MAX_ALERT_LABELS));
    for (k, v) in &raw {
        if k.len() > MAX_LABEL_NAME_BYTES {
            problems.push(format!(
                "{at}.labels.{}: a name of {} bytes; a label name is at most {MAX_LABEL_NAME_BYTES}",
                shown_name(k),
                k.len()
            ));
        } else if !valid_label_name(k) {
            problems.push(format!(
                "{at}.labels.{k}: {k:?} is not a label name; names match [a-zA-Z_][a-zA-Z0-9_]*"
            ));
        } else if v.len() > MAX_LABEL_VALUE_BYTES {
            problems.push(format!(
                "{at}.labels.{k}: a value of {} bytes; a label value is at most {MAX_LABEL_VALUE_BYTES}",
                v.len()
            ));
        } else if !v.is_empty() {
            // An empty value is the same as no label, as in Prometheus.
            pairs.push((k.as_str(), v.as_str()));
        }
    }
    let labels: Labels = if problems.len() == before {
        pairs.into_iter().collect()
    } else {
        Labels::new()
    };
    if problems.len() == before && labels.get("alertname").is_none() {
        problems.push(format!(
            "{at}.labels: no alertname label; every alert needs one, runbooks match on it"
        ));
    }
    let starts = time(at, "startsAt", starts_at, problems);
    let ends = time(at, "endsAt", ends_at, problems);
    if let (Some(s), Some(e)) = (starts, ends)
        && e < s
    {
        problems.push(format!(
            "{at}.endsAt: {} is before startsAt {}; an alert cannot end before it starts",
            ends_at.unwrap_or_default(),
            starts_at.unwrap_or_default()
        ));
    }
    (problems.len() == before).then_some((labels, starts, ends))
}

/// A name as a problem names it: whole when short, else its start and a
/// mark that it was cut.
fn shown_name(k: &str) -> String {
    let h = head(k, 64);
    if h.len() < k.len() {
        format!("{h}…")
    } else {
        h.to_owned()
    }
}

/// Go's zero time (`0001-01-01T00:00:00Z`) is how Alertmanager writes
/// "not set"; it reads as `None`, like a missing field.
fn time(at: &str, field: &str, v: Option<&str>, problems: &mut Vec<String>) -> Option<Millis> {
    let v = v.filter(|s| !s.is_empty())?;
    match chrono::DateTime::parse_from_rfc3339(v) {
        Ok(t) if t.timestamp() <= GO_ZERO_TIME_SECS => None,
        Ok(t) => Some(t.timestamp_millis()),
        Err(e) => {
            problems.push(format!(
                "{at}.{field}: {v:?} is not a time ({e}); expected RFC 3339, like 2023-05-24T22:00:00Z"
            ));
            None
        }
    }
}

/// `0001-01-01T00:00:00Z` in Unix seconds.
const GO_ZERO_TIME_SECS: i64 = -62_135_596_800;

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Alertmanager 0.25 posts, field for field.
    const WEBHOOK: &str = r#"{
      "receiver": "firebreak",
      "status": "firing",
      "alerts": [
        {
          "status": "firing",
          "labels": {"alertname": "SpeakerFeedback", "room": "main", "speaker": "host", "severity": "critical"},
          "annotations": {"summary": "Speaker host in room main is feeding back (level 0.85)"},
          "startsAt": "2023-05-24T22:00:47.123Z",
          "endsAt": "0001-01-01T00:00:00Z",
          "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
          "fingerprint": "3d1b8a2c0f9e7d65"
        },
        {
          "status": "resolved",
          "labels": {"alertname": "TargetDown", "job": "sim"},
          "annotations": {},
          "startsAt": "2023-05-24T21:58:00Z",
          "endsAt": "2023-05-24T22:01:00Z",
          "generatorURL": "",
          "fingerprint": "0123456789abcdef"
        }
      ],
      "groupLabels": {"alertname": "SpeakerFeedback"},
      "commonLabels": {"alertname": "SpeakerFeedback"},
      "commonAnnotations": {},
      "externalURL": "http://alertmanager:9093",
      "version": "4",
      "groupKey": "{}:{alertname=\"SpeakerFeedback\"}",
      "truncatedAlerts": 0
    }"#;

    #[test]
    fn reads_alertmanagers_webhook() {
        let r = read_webhook(WEBHOOK.as_bytes()).unwrap();
        assert!(r.ignored.is_empty(), "{:?}", r.ignored);
        assert_eq!(r.alerts.len(), 2);
        let a = &r.alerts[0];
        assert_eq!(a.labels.get("alertname"), Some("SpeakerFeedback"));
        assert_eq!(a.labels.get("speaker"), Some("host"));
        assert_eq!(a.starts_at, Some(1_684_965_647_123));
        assert_eq!(a.lifecycle, Lifecycle::Told { resolved: false });
        assert_eq!(a.via, "alertmanager (receiver firebreak)");
        assert_eq!(
            a.generator_url.as_deref(),
            Some("http://prometheus:9090/graph?g0.expr=x")
        );
        assert_eq!(r.alerts[1].lifecycle, Lifecycle::Told { resolved: true });
        assert_eq!(r.alerts[1].generator_url, None);
    }

    #[test]
    fn reads_what_prometheus_posts() {
        let body = r#"[{"labels": {"alertname": "X", "room": "main"}, "annotations": {"summary": "s"},
            "startsAt": "2023-05-24T22:00:00Z", "endsAt": "2023-05-24T22:04:00Z", "generatorURL": "http://p/graph"},
            {"labels": {"alertname": "Y"}}]"#;
        let r = read_postable(body.as_bytes()).unwrap();
        assert_eq!(r.alerts.len(), 2);
        assert_eq!(
            r.alerts[0].lifecycle,
            Lifecycle::Until(Some(1_684_965_840_000))
        );
        assert_eq!(r.alerts[0].via, "api");
        assert_eq!(r.alerts[1].starts_at, None);
        assert_eq!(r.alerts[1].lifecycle, Lifecycle::Until(None));
    }

    #[test]
    fn unknown_fields_are_read_past_and_named() {
        let body = r#"[{"labels": {"alertname": "X"}, "silenceURL": "x"}]"#;
        let r = read_postable(body.as_bytes()).unwrap();
        assert_eq!(r.ignored, vec!["[0].silenceURL"]);
        let hook = WEBHOOK.replace("\"version\"", "\"newField\": 1, \"version\"");
        let r = read_webhook(hook.as_bytes()).unwrap();
        assert_eq!(r.ignored, vec!["newField"]);
    }

    #[test]
    fn every_problem_is_named_with_its_place() {
        let body = r#"[
          {"labels": {"room": "main"}},
          {"labels": {"alertname": "X", "bad-name": "v"}},
          {"labels": {"alertname": "X"}, "startsAt": "yesterday"},
          {"labels": {"alertname": "X"}, "startsAt": "2023-05-24T22:05:00Z", "endsAt": "2023-05-24T22:00:00Z"}
        ]"#;
        let e = read_postable(body.as_bytes()).unwrap_err();
        assert_eq!(e.problems.len(), 4, "{e}");
        assert!(
            e.problems[0].starts_with("[0].labels: no alertname label"),
            "{e}"
        );
        assert!(
            e.problems[1].starts_with("[1].labels.bad-name: \"bad-name\" is not a label name"),
            "{e}"
        );
        assert!(
            e.problems[2].starts_with("[2].startsAt: \"yesterday\" is not a time"),
            "{e}"
        );
        assert!(
            e.problems[3].starts_with("[3].endsAt: 2023-05-24T22:00:00Z is before startsAt"),
            "{e}"
        );
    }

    #[test]
    fn json_errors_say_where() {
        let e = read_postable(b"[{\"labels\": {\"alertname\": 5}}]").unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert!(
            e.problems[0]
                .starts_with("line 1 column 27: invalid type: integer `5`, expected a string"),
            "{e}"
        );
        let e = read_postable(b"{\"labels\": {}}").unwrap_err();
        assert!(e.problems[0].contains("expected a sequence"), "{e}");
        assert!(
            e.problems[0].contains("/api/v2/alerts") || e.problems[0].contains("API v2"),
            "{e}"
        );
    }

    #[test]
    fn webhook_version_and_status_are_checked() {
        let hook = WEBHOOK
            .replace("\"version\": \"4\"", "\"version\": \"3\"")
            .replacen(
                "\"status\": \"firing\",\n          \"labels\"",
                "\"status\": \"burning\",\n          \"labels\"",
                1,
            );
        let e = read_webhook(hook.as_bytes()).unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e}");
        assert!(e.problems[0].starts_with("version: \"3\""), "{e}");
        assert!(
            e.problems[1].starts_with("alerts[0].status: \"burning\" is not a status"),
            "{e}"
        );
        let e = read_webhook(br#"[{"labels": {"alertname": "X"}}]"#).unwrap_err();
        assert!(e.problems[0].contains("webhook payload"), "{e}");
    }

    #[test]
    fn empty_label_values_are_no_label() {
        let r = read_postable(br#"[{"labels": {"alertname": "X", "room": ""}}]"#).unwrap();
        assert_eq!(r.alerts[0].labels.len(), 1);
    }

    fn labels_json(n: usize) -> String {
        let mut m = serde_json::Map::new();
        m.insert("alertname".into(), "Many".into());
        for i in 0..n {
            m.insert(format!("l{i:05}"), format!("v{i}").into());
        }
        serde_json::Value::Object(m).to_string()
    }

    #[test]
    fn labels_past_the_cap_are_refused_by_count() {
        let body = format!("[{{\"labels\": {}}}]", labels_json(16 * 1024));
        let e = read_postable(body.as_bytes()).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e:?}");
        assert!(
            e.problems[0].contains("16385 labels; firebreak takes at most 128"),
            "{e:?}"
        );
        let hook = format!(
            "{{\"version\": \"4\", \"alerts\": [{{\"status\": \"firing\", \"labels\": {}}}]}}",
            labels_json(500)
        );
        let e = read_webhook(hook.as_bytes()).unwrap_err();
        assert!(e.problems[0].contains("501 labels"), "{e:?}");
    }

    #[test]
    fn many_labels_within_the_cap_read_as_one_sorted_set() {
        let body = format!("[{{\"labels\": {}}}]", labels_json(MAX_ALERT_LABELS - 1));
        let read = read_postable(body.as_bytes()).unwrap();
        let l = &read.alerts[0].labels;
        assert_eq!(l.iter().count(), MAX_ALERT_LABELS);
        let mut by_set = Labels::new();
        for (k, v) in l.iter() {
            by_set.set(k, v);
        }
        assert_eq!(*l, by_set);
        assert_eq!(l.get("l00042"), Some("v42"));
    }

    #[test]
    fn oversized_names_values_and_annotations_are_refused() {
        let long_name = "n".repeat(MAX_LABEL_NAME_BYTES + 1);
        let long_value = "v".repeat(MAX_LABEL_VALUE_BYTES + 1);
        let long_note = "d".repeat(MAX_ANNOTATION_BYTES + 1);
        let body = serde_json::json!([{
            "labels": {"alertname": "Big", &long_name: "x", "room": long_value},
            "annotations": {"description": long_note},
        }])
        .to_string();
        let e = read_postable(body.as_bytes()).unwrap_err();
        let all = e.problems.join("\n");
        assert!(
            all.contains("[0].annotations.description: 16385 bytes"),
            "{all}"
        );
        assert!(all.contains("a name of 257 bytes"), "{all}");
        // The name is shown cut, not echoed whole.
        assert!(!all.contains(&long_name), "{all}");
        assert!(
            all.contains("[0].labels.room: a value of 4097 bytes"),
            "{all}"
        );
    }

    #[test]
    fn a_refusal_lists_a_bounded_number_of_problems() {
        let alerts: Vec<String> = (0..100)
            .map(|_| "{\"labels\": {\"bad-name\": \"x\"}}".to_owned())
            .collect();
        let body = format!("[{}]", alerts.join(","));
        let e = read_postable(body.as_bytes()).unwrap_err();
        assert_eq!(e.problems.len(), crate::limits::MAX_PROBLEMS_LISTED + 1);
        assert_eq!(e.problems.last().unwrap(), "... and 80 more problems");
    }
}
