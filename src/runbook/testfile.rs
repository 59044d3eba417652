//! Runbook tests (`kind: runbook_test`): the file format, its strict
//! validation, and how a run's record is compared with what a test
//! expects. Running a test (a fake server, the executor, a manual clock)
//! is I/O and lives in [`crate::stub_runs`].
//!
//! Pure model: parsing takes the file's text, comparison takes what the
//! run recorded.

use crate::run_state::{Outcome, StepState};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use serde_json::Value as Json;

use super::Runbook;
use super::plan::AlertInput;
use crate::diag::{Collector, Diagnostics, Pos, Sp, did_you_mean, from_yaml, one_of};
use crate::duration::Millis;
use crate::duration::PromDuration;
use crate::roles::Role;
use crate::rules::unittest::{InputSeries, expand_series_values, parse_series_labels};

pub const KIND: &str = "runbook_test";
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
/// promtool's default for input series.
const DEFAULT_INTERVAL_MS: Millis = 60_000;

// ---- raw shapes ------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    kind: Sp<String>,
    runbook: Sp<String>,
    tests: Sp<Vec<Sp<RawCase>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Sp<String>,
    alert: Option<AlertInput>,
    #[serde(default)]
    inputs: BTreeMap<String, Json>,
    #[serde(default)]
    stubs: Vec<Sp<RawStub>>,
    #[serde(default)]
    approvals: BTreeMap<String, Sp<RawAnswer>>,
    interval: Option<Sp<String>>,
    at: Option<Sp<String>>,
    #[serde(default)]
    input_series: Vec<Sp<RawSeries>>,
    expect: Sp<RawExpect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStub {
    target: Option<Sp<String>>,
    method: Sp<String>,
    path: Sp<String>,
    status: Option<Sp<u16>>,
    body: Option<Json>,
    responses: Option<Sp<Vec<Sp<RawResponse>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponse {
    status: Option<Sp<u16>>,
    body: Option<Json>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnswer {
    answer: Sp<String>,
    by: Option<String>,
    role: Option<Sp<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    series: Sp<String>,
    values: Sp<String>,
}

/// `step_id: result`, one pair per list item.
type RawStepResult = BTreeMap<String, Sp<String>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    outcome: Sp<String>,
    steps: Option<Vec<Sp<RawStepResult>>>,
    calls: Option<Vec<Sp<Json>>>,
    chat: Option<Vec<String>>,
}

// ---- validated -------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct TestFile {
    pub file: String,
    /// As written: relative to the test file.
    pub runbook: String,
    pub runbook_pos: Option<Pos>,
    pub cases: Vec<Case>,
}

#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub pos: Option<Pos>,
    pub alert: Option<AlertInput>,
    pub inputs: BTreeMap<String, Json>,
    pub stubs: Vec<Stub>,
    /// By gate: `run`, or the id of a step with an approval.
    pub approvals: BTreeMap<String, Answer>,
    pub interval_ms: Millis,
    /// When the run starts, from the input series' time 0; later than 0
    /// lets a `query` of a rate see the series' past.
    pub at_ms: Millis,
    pub input_series: Vec<InputSeries>,
    pub expect: Expect,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stub {
    /// `None`: the only target in config.
    pub target: Option<String>,
    pub method: String,
    pub path: String,
    /// Answered in turn; the last one repeats.
    pub responses: Vec<Response>,
    pub pos: Option<Pos>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Json,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub approve: bool,
    pub by: String,
    pub role: Role,
}

#[derive(Clone, Debug)]
pub struct Expect {
    pub outcome: String,
    pub steps: Option<Vec<(String, String, Option<Pos>)>>,
    pub calls: Option<Vec<ExpCall>>,
    pub chat: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExpCall {
    pub target: Option<String>,
    pub method: String,
    pub path: String,
    /// Every field here must be in the body sent, with the same value.
    pub body: Option<Json>,
}

/// A call the fake targets received.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub target: String,
    pub method: String,
    pub path: String,
    pub body: Option<Json>,
}

/// What a step's record may say, as tests write it. `held` is a
/// rollback its guard did not let act.
pub const RESULTS: [&str; 8] = [
    "done",
    "skipped",
    "failed",
    "interrupted",
    "approved",
    "denied",
    "timed_out",
    "held",
];

/// The store's state for a step, as tests write it.
pub fn result_of(state: StepState) -> &'static str {
    match state {
        StepState::Succeeded => "done",
        other => other.as_str(),
    }
}

/// Parses and validates a runbook test file, collecting every problem.
pub fn parse_test_file(file: &str, text: &str) -> Result<TestFile, Diagnostics> {
    let raw: RawFile = from_yaml(file, text)?;
    let mut c = Collector::new(file);
    if raw.kind.value != KIND {
        c.err(
            Pos::of(&raw.kind),
            "kind",
            format!("expected `kind: {KIND}`, got {:?}", raw.kind.value),
        );
    }
    if raw.runbook.value.trim().is_empty() {
        c.err(
            Pos::of(&raw.runbook),
            "runbook",
            "must name the runbook file under test, relative to this file",
        );
    }
    if raw.tests.value.is_empty() {
        c.err(
            Pos::of(&raw.tests),
            "tests",
            "no test cases; give at least one",
        );
    }
    let mut names = BTreeSet::new();
    let mut cases = Vec::new();
    for (i, sp) in raw.tests.value.iter().enumerate() {
        let field = format!("tests[{i}]");
        let r = &sp.value;
        if r.name.value.trim().is_empty() {
            c.err(
                Pos::of(&r.name),
                format!("{field}.name"),
                "must not be empty",
            );
        } else if !names.insert(r.name.value.clone()) {
            c.err(
                Pos::of(&r.name),
                format!("{field}.name"),
                format!("duplicate test name {:?}", r.name.value),
            );
        }
        cases.push(check_case(&mut c, r, &field, Pos::of(sp)));
    }
    c.out.sorted().into_result(TestFile {
        file: file.to_owned(),
        runbook: raw.runbook.value.clone(),
        runbook_pos: Pos::of(&raw.runbook),
        cases,
    })
}

fn check_case(c: &mut Collector, r: &RawCase, field: &str, pos: Option<Pos>) -> Case {
    let mut stubs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, sp) in r.stubs.iter().enumerate() {
        let f = format!("{field}.stubs[{i}]");
        let s = &sp.value;
        let method = check_method(c, &s.method, &format!("{f}.method"));
        check_path(c, &s.path, &format!("{f}.path"));
        let target = s.target.as_ref().map(|t| t.value.clone());
        if !seen.insert((target.clone(), method.clone(), s.path.value.clone())) {
            c.err(
                Pos::of(sp),
                &f,
                format!(
                    "a second stub for {method} {}; give one stub with `responses:` for a sequence",
                    s.path.value
                ),
            );
        }
        let responses = match &s.responses {
            Some(list) => {
                if s.status.is_some() || s.body.is_some() {
                    c.err(
                        Pos::of(list),
                        format!("{f}.responses"),
                        "give either `status`/`body` or `responses`, not both",
                    );
                }
                if list.value.is_empty() {
                    c.err(
                        Pos::of(list),
                        format!("{f}.responses"),
                        "empty; give at least one response",
                    );
                }
                list.value
                    .iter()
                    .enumerate()
                    .map(|(j, x)| {
                        response(
                            c,
                            x.value.status.as_ref(),
                            &x.value.body,
                            &format!("{f}.responses[{j}]"),
                        )
                    })
                    .collect()
            }
            None => vec![response(c, s.status.as_ref(), &s.body, &f)],
        };
        stubs.push(Stub {
            target,
            method,
            path: s.path.value.clone(),
            responses,
            pos: Pos::of(sp),
        });
    }
    let mut approvals = BTreeMap::new();
    for (gate, sp) in &r.approvals {
        let f = format!("{field}.approvals.{gate}");
        let a = &sp.value;
        let approve = match a.answer.value.as_str() {
            "approve" => true,
            "deny" => false,
            other => {
                c.err(
                    Pos::of(&a.answer),
                    format!("{f}.answer"),
                    format!("unknown answer {other:?}; expected approve or deny (leave the gate out to let it time out)"),
                );
                false
            }
        };
        let role = match &a.role {
            None => Role::Commander,
            Some(r) => Role::parse(&r.value).unwrap_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                c.err(
                    Pos::of(r),
                    format!("{f}.role"),
                    format!(
                        "unknown role {:?}; expected one of: {}",
                        r.value,
                        one_of(&names)
                    ),
                );
                Role::Commander
            }),
        };
        approvals.insert(
            gate.clone(),
            Answer {
                approve,
                by: a.by.clone().unwrap_or_else(|| "tester".into()),
                role,
            },
        );
    }
    let at_ms = match &r.at {
        None => 0,
        Some(sp) => match PromDuration::parse(sp.value.trim()) {
            Ok(d) => d.as_millis() as Millis,
            Err(e) => {
                c.err(Pos::of(sp), format!("{field}.at"), e.to_string());
                0
            }
        },
    };
    let interval_ms = match &r.interval {
        None => DEFAULT_INTERVAL_MS,
        Some(sp) => match PromDuration::parse(sp.value.trim()) {
            Ok(d) if !d.is_zero() => d.as_millis() as Millis,
            Ok(_) => {
                c.err(
                    Pos::of(sp),
                    format!("{field}.interval"),
                    "must be greater than 0s",
                );
                DEFAULT_INTERVAL_MS
            }
            Err(e) => {
                c.err(Pos::of(sp), format!("{field}.interval"), e.to_string());
                DEFAULT_INTERVAL_MS
            }
        },
    };
    let mut input_series = Vec::new();
    for (i, sp) in r.input_series.iter().enumerate() {
        let f = format!("{field}.input_series[{i}]");
        let labels = parse_series_labels(&sp.value.series.value).map_err(|(m, col)| {
            let pos = Pos::of(&sp.value.series).map(|p| p.offset_within(col as u32));
            c.err(
                pos,
                format!("{f}.series"),
                format!("invalid series: {m}; expected e.g. live_room_listeners{{room=\"main\"}}"),
            );
        });
        let values = expand_series_values(&sp.value.values.value).map_err(|e| {
            let pos = Pos::of(&sp.value.values).map(|p| p.offset_within(e.col as u32));
            c.err(
                pos,
                format!("{f}.values"),
                format!("invalid series values: {}; expected promtool notation such as `1 2 _ 4` or `100+10x5`", e.message),
            );
        });
        if let (Ok(labels), Ok(values)) = (labels, values) {
            input_series.push(InputSeries { labels, values });
        }
    }
    let x = &r.expect.value;
    let outcome = x.outcome.value.clone();
    if Outcome::parse(&outcome).is_none() {
        let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        c.err(
            Pos::of(&x.outcome),
            format!("{field}.expect.outcome"),
            format!(
                "unknown outcome {outcome:?}; expected one of: {}",
                one_of(&names)
            ),
        );
    }
    let steps = x.steps.as_ref().map(|list| {
        list.iter()
            .enumerate()
            .filter_map(|(i, sp)| {
                let f = format!("{field}.expect.steps[{i}]");
                if sp.value.len() != 1 {
                    c.err(
                        Pos::of(sp),
                        &f,
                        format!(
                            "expected one `step_id: result` pair, got {}",
                            sp.value.len()
                        ),
                    );
                    return None;
                }
                let (id, res) = sp.value.iter().next().expect("one entry");
                if !RESULTS.contains(&res.value.as_str()) {
                    c.err(
                        Pos::of(res),
                        format!("{f}.{id}"),
                        format!(
                            "unknown result {:?}; expected one of: {}",
                            res.value,
                            one_of(&RESULTS)
                        ),
                    );
                }
                Some((id.clone(), res.value.clone(), Pos::of(sp)))
            })
            .collect()
    });
    let calls = x.calls.as_ref().map(|list| {
        list.iter()
            .enumerate()
            .filter_map(|(i, sp)| exp_call(c, sp, &format!("{field}.expect.calls[{i}]")))
            .collect()
    });
    Case {
        name: r.name.value.clone(),
        pos,
        alert: r.alert.clone(),
        inputs: r.inputs.clone(),
        stubs,
        approvals,
        interval_ms,
        at_ms,
        input_series,
        expect: Expect {
            outcome,
            steps,
            calls,
            chat: x.chat.clone(),
        },
    }
}

fn check_method(c: &mut Collector, m: &Sp<String>, field: &str) -> String {
    let up = m.value.to_ascii_uppercase();
    if !METHODS.contains(&up.as_str()) {
        c.err(
            Pos::of(m),
            field,
            format!(
                "unknown method {:?}; expected one of: {}",
                m.value,
                METHODS.join(", ")
            ),
        );
    }
    up
}

fn check_path(c: &mut Collector, p: &Sp<String>, field: &str) {
    if !p.value.starts_with('/') || p.value.contains('?') {
        c.err(
            Pos::of(p),
            field,
            format!(
                "{:?} must be a path starting with `/`, as the runbook's step renders it (no query string)",
                p.value
            ),
        );
    }
}

fn response(
    c: &mut Collector,
    status: Option<&Sp<u16>>,
    body: &Option<Json>,
    field: &str,
) -> Response {
    let s = status.map_or(200, |s| s.value);
    if !(100..=599).contains(&s) {
        c.err(
            status.and_then(Pos::of),
            format!("{field}.status"),
            format!("{s} is not an HTTP status; expected 100 to 599"),
        );
    }
    Response {
        status: s,
        body: body
            .clone()
            .unwrap_or_else(|| Json::Object(Default::default())),
    }
}

/// `"POST /api/v1/rooms"` or `{method, path, target, body}`.
fn exp_call(c: &mut Collector, sp: &Sp<Json>, field: &str) -> Option<ExpCall> {
    let pos = Pos::of(sp);
    let shape = "expected \"METHOD /path\" or {method, path, target (optional), body (optional, a subset of the body sent)}";
    let (method, path, target, body) = match &sp.value {
        Json::String(s) => {
            let mut parts = s.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(m), Some(p), None) => (m.to_owned(), p.to_owned(), None, None),
                _ => {
                    c.err(pos, field, format!("{s:?}: {shape}"));
                    return None;
                }
            }
        }
        Json::Object(map) => {
            for k in map.keys() {
                if !matches!(k.as_str(), "method" | "path" | "target" | "body") {
                    c.err(
                        pos,
                        format!("{field}.{k}"),
                        format!("unknown field; {shape}"),
                    );
                }
            }
            let text = |k: &str| map.get(k).and_then(Json::as_str).map(str::to_owned);
            let (Some(m), Some(p)) = (text("method"), text("path")) else {
                c.err(pos, field, format!("needs `method` and `path`; {shape}"));
                return None;
            };
            (m, p, text("target"), map.get("body").cloned())
        }
        other => {
            c.err(pos, field, format!("got {other}; {shape}"));
            return None;
        }
    };
    let up = method.to_ascii_uppercase();
    if !METHODS.contains(&up.as_str()) {
        c.err(
            pos,
            format!("{field}.method"),
            format!(
                "unknown method {method:?}; expected one of: {}",
                METHODS.join(", ")
            ),
        );
    }
    if !path.starts_with('/') {
        c.err(
            pos,
            format!("{field}.path"),
            format!("{path:?} must start with `/`"),
        );
    }
    Some(ExpCall {
        target,
        method: up,
        path,
        body,
    })
}

/// Checks a test file against its runbook and the configured targets:
/// inputs, gates and step ids it names must exist there.
pub fn check_against(tf: &TestFile, rb: &Runbook, targets: &[String]) -> Diagnostics {
    let mut c = Collector::new(&tf.file);
    let inputs: Vec<&str> = rb.inputs.iter().map(|i| i.name.as_str()).collect();
    let mut ids: Vec<String> = Vec::new();
    let mut gates: Vec<String> = Vec::new();
    if rb.approval.is_some() {
        gates.push("run".into());
        ids.push("approval:run".into());
    }
    // A `runbook` step's own steps are recorded as `step/called_step`; the
    // called runbook is linked only when the case runs, so any called
    // step id is accepted here and the run says what it got.
    let mut callers: Vec<&str> = Vec::new();
    for s in rb.steps.iter().chain(rb.verify_steps()) {
        ids.push(s.id.clone());
        if s.action == "runbook" {
            callers.push(&s.id);
        }
        if s.approval.is_some() {
            gates.push(s.id.clone());
            ids.push(format!("approval:{}", s.id));
        }
        if s.action == "approval" {
            gates.push(s.id.clone());
        }
        if let Some(undo) = &s.rollback {
            // A guard's reads are recorded before the rollback they guard.
            for r in undo.guard.iter().flat_map(|g| &g.read) {
                ids.push(r.step.id.clone());
            }
            ids.push(undo.id.clone());
        }
    }
    for (i, t) in tf.cases.iter().enumerate() {
        let field = format!("tests[{i}]");
        for name in t.inputs.keys() {
            if !inputs.contains(&name.as_str()) {
                let hint = did_you_mean(name, &inputs)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                c.err(
                    t.pos,
                    format!("{field}.inputs.{name}"),
                    format!(
                        "runbook {} has no input `{name}`{hint}; its inputs: {}",
                        rb.name,
                        if inputs.is_empty() {
                            "none".into()
                        } else {
                            one_of(&inputs)
                        }
                    ),
                );
            }
        }
        for gate in t.approvals.keys() {
            if !gates.contains(gate) {
                let hint = did_you_mean(gate, &gates)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                c.err(
                    t.pos,
                    format!("{field}.approvals.{gate}"),
                    format!(
                        "runbook {} has no approval gate `{gate}`{hint}; its gates: {}",
                        rb.name,
                        if gates.is_empty() {
                            "none".into()
                        } else {
                            one_of(&gates)
                        }
                    ),
                );
            }
        }
        for (id, _, pos) in t.expect.steps.iter().flatten() {
            let called = id
                .split_once('/')
                .is_some_and(|(by, step)| callers.contains(&by) && !step.is_empty());
            if !ids.contains(id) && !called {
                let hint = did_you_mean(id, &ids)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                c.err(
                    *pos,
                    format!("{field}.expect.steps"),
                    format!(
                        "runbook {} has no step `{id}`{hint}; its steps: {}",
                        rb.name,
                        ids.join(", ")
                    ),
                );
            }
        }
        for (j, s) in t.stubs.iter().enumerate() {
            match &s.target {
                Some(name) if !targets.contains(name) => c.err(
                    s.pos,
                    format!("{field}.stubs[{j}].target"),
                    format!(
                        "unknown target {name:?}; configured targets: {}",
                        one_of(targets)
                    ),
                ),
                None if targets.len() != 1 => c.err(
                    s.pos,
                    format!("{field}.stubs[{j}].target"),
                    format!(
                        "needed when config has more than one target: {}",
                        one_of(targets)
                    ),
                ),
                _ => {}
            }
        }
    }
    c.out
}

// ---- comparing -------------------------------------------------------------

/// What one run did, as the store and the fake targets saw it.
#[derive(Clone, Debug, Default)]
pub struct Got {
    pub outcome: String,
    /// Why the run did not succeed, from its record.
    pub error: Option<String>,
    /// (step id, result, error) in the order they ran.
    pub steps: Vec<(String, String, Option<String>)>,
    pub calls: Vec<Call>,
    /// Calls no stub answered (they got 404).
    pub unstubbed: Vec<Call>,
    pub chat: Vec<String>,
    /// Problems of the harness itself (an approval refused, a time limit).
    pub notes: Vec<String>,
}

/// One failed check of a case, with what was expected and what came.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    Setup(String),
    Unstubbed(Vec<String>),
    Outcome {
        exp: String,
        got: String,
        error: Option<String>,
    },
    Steps(Vec<DiffLine>),
    Calls(Vec<DiffLine>),
    Chat {
        missing: String,
        after: Option<String>,
        got: Vec<String>,
    },
}

impl Failure {
    /// What differed, for `firebreak test runbooks --json`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Setup(_) => "setup",
            Failure::Unstubbed(_) => "unstubbed",
            Failure::Outcome { .. } => "outcome",
            Failure::Steps(_) => "steps",
            Failure::Calls(_) => "calls",
            Failure::Chat { .. } => "chat",
        }
    }
}

/// One line of a list diff.
#[derive(Clone, Debug, PartialEq)]
pub enum DiffLine {
    Same(String),
    /// Expected, not got.
    Exp(String),
    /// Got, not expected.
    Got(String),
}

/// Compares a run with a case's expectations.
pub fn compare(t: &Case, got: &Got) -> Vec<Failure> {
    let mut out = Vec::new();
    if !got.unstubbed.is_empty() {
        out.push(Failure::Unstubbed(
            got.unstubbed.iter().map(call_text).collect(),
        ));
    }
    if got.outcome != t.expect.outcome {
        out.push(Failure::Outcome {
            exp: t.expect.outcome.clone(),
            got: got.outcome.clone(),
            error: got.error.clone(),
        });
    }
    if let Some(exp) = &t.expect.steps {
        let exp: Vec<String> = exp.iter().map(|(id, r, _)| format!("{id}: {r}")).collect();
        let got_lines: Vec<String> = got
            .steps
            .iter()
            .map(|(id, r, _)| format!("{id}: {r}"))
            .collect();
        if exp != got_lines {
            let mut d = diff(&exp, &got_lines);
            // A failed step's error says why; it goes on its own line.
            for line in &mut d {
                if let DiffLine::Got(s) | DiffLine::Same(s) = line
                    && let Some((_, _, Some(e))) = got
                        .steps
                        .iter()
                        .find(|(id, r, _)| format!("{id}: {r}") == *s)
                {
                    s.push_str(&format!("  ({e})"));
                }
            }
            out.push(Failure::Steps(d));
        }
    }
    if let Some(exp) = &t.expect.calls {
        let matches = exp.len() == got.calls.len()
            && exp.iter().zip(&got.calls).all(|(e, g)| call_matches(e, g));
        if !matches {
            let exp_lines: Vec<String> = exp.iter().map(exp_call_text).collect();
            // Lines of calls that match their expectation read the same on
            // both sides, so the diff shows only what differs.
            let got_lines: Vec<String> = got
                .calls
                .iter()
                .enumerate()
                .map(|(i, g)| match exp.get(i) {
                    Some(e) if call_matches(e, g) => exp_call_text(e),
                    _ => call_text(g),
                })
                .collect();
            out.push(Failure::Calls(diff(&exp_lines, &got_lines)));
        }
    }
    if let Some(exp) = &t.expect.chat {
        let mut from = 0;
        let mut prev: Option<&String> = None;
        for want in exp {
            match got.chat[from..]
                .iter()
                .position(|m| m.contains(want.as_str()))
            {
                Some(i) => {
                    from += i + 1;
                    prev = Some(want);
                }
                None => {
                    out.push(Failure::Chat {
                        missing: want.clone(),
                        after: prev.cloned(),
                        got: got.chat.clone(),
                    });
                    break;
                }
            }
        }
    }
    if !out.is_empty() {
        out.extend(got.notes.iter().cloned().map(Failure::Setup));
    }
    out
}

fn call_matches(e: &ExpCall, g: &Call) -> bool {
    e.method == g.method
        && e.path == g.path
        && e.target.as_ref().is_none_or(|t| *t == g.target)
        && e.body
            .as_ref()
            .is_none_or(|b| g.body.as_ref().is_some_and(|got| subset(b, got)))
}

/// Whether every field of `want` is in `got` with the same value (objects
/// recursively; arrays and scalars exactly).
pub fn subset(want: &Json, got: &Json) -> bool {
    match (want, got) {
        (Json::Object(w), Json::Object(g)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|x| subset(v, x))),
        _ => want == got,
    }
}

fn call_text(c: &Call) -> String {
    let body = c.body.as_ref().map(|b| format!(" {b}")).unwrap_or_default();
    format!("{} {} (target {}){body}", c.method, c.path, c.target)
}

fn exp_call_text(c: &ExpCall) -> String {
    let target = c
        .target
        .as_ref()
        .map(|t| format!(" (target {t})"))
        .unwrap_or_default();
    let body = c
        .body
        .as_ref()
        .map(|b| format!(" body ⊇ {b}"))
        .unwrap_or_default();
    format!("{} {}{target}{body}", c.method, c.path)
}

/// A line diff by longest common subsequence: small lists, exact lines.
pub fn diff(exp: &[String], got: &[String]) -> Vec<DiffLine> {
    let (n, m) = (exp.len(), got.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if exp[i] == got[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && exp[i] == got[j] {
            out.push(DiffLine::Same(exp[i].clone()));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(DiffLine::Got(got[j].clone()));
            j += 1;
        } else {
            out.push(DiffLine::Exp(exp[i].clone()));
            i += 1;
        }
    }
    out
}

impl fmt::Display for DiffLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiffLine::Same(s) => write!(f, "          {s}"),
            DiffLine::Exp(s) => write!(f, "    - exp {s}"),
            DiffLine::Got(s) => write!(f, "    + got {s}"),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Setup(m) => write!(f, "    {m}"),
            Failure::Unstubbed(calls) => {
                writeln!(
                    f,
                    "    calls no stub answers (each got 404; add a stub or fix the path):"
                )?;
                let lines: Vec<String> = calls.iter().map(|c| format!("      {c}")).collect();
                write!(f, "{}", lines.join("\n"))
            }
            Failure::Outcome { exp, got, error } => {
                write!(f, "    outcome:\n        exp: {exp}\n        got: {got}")?;
                if let Some(e) = error {
                    write!(f, " ({e})")?;
                }
                Ok(())
            }
            Failure::Steps(d) | Failure::Calls(d) => {
                let what = if matches!(self, Failure::Steps(_)) {
                    "steps"
                } else {
                    "calls"
                };
                writeln!(f, "    {what} (- expected only, + got only):")?;
                let lines: Vec<String> = d.iter().map(ToString::to_string).collect();
                write!(f, "{}", lines.join("\n"))
            }
            Failure::Chat {
                missing,
                after,
                got,
            } => {
                write!(f, "    chat: no message contains {missing:?}")?;
                if let Some(a) = after {
                    write!(f, " after the one containing {a:?}")?;
                }
                write!(f, "; messages posted:")?;
                for m in got {
                    write!(f, "\n      {m}")?;
                }
                Ok(())
            }
        }
    }
}

/// The result of one case.
#[derive(Clone, Debug)]
pub struct CaseReport {
    pub name: String,
    pub failures: Vec<Failure>,
}

impl fmt::Display for CaseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.failures.is_empty() {
            return writeln!(f, "  PASS {}", self.name);
        }
        writeln!(f, "  FAIL {}", self.name)?;
        for x in &self.failures {
            writeln!(f, "{x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        match parse_test_file("t.yaml", text) {
            Ok(_) => vec![],
            Err(d) => d.iter().map(ToString::to_string).collect(),
        }
    }

    const GOOD: &str = r#"kind: runbook_test
runbook: ../mute-feedback-speaker.yaml
tests:
  - name: mutes
    alert:
      labels: {alertname: SpeakerFeedback, room: main, speaker: host}
      value: 0.9
    stubs:
      - method: post
        path: /api/v1/rooms/main/speakers/host/mute
        responses:
          - {status: 503}
          - {status: 200, body: {muted: true}}
    approvals:
      run: {answer: approve, by: U-lead, role: commander}
    interval: 15s
    input_series:
      - series: 'feedback{room="main"}'
        values: '0.1+0.1x3'
    expect:
      outcome: succeeded
      steps:
        - mute: done
        - tell_host: done
      calls:
        - POST /api/v1/rooms/main/speakers/host/mute
        - {method: POST, path: /x, target: platform, body: {muted: true}}
      chat: ["Muted host"]
"#;

    #[test]
    fn a_good_file_parses() {
        let tf = parse_test_file("t.yaml", GOOD).unwrap_or_else(|e| panic!("{e}"));
        let t = &tf.cases[0];
        assert_eq!(tf.runbook, "../mute-feedback-speaker.yaml");
        assert_eq!(t.stubs[0].method, "POST");
        assert_eq!(t.stubs[0].responses.len(), 2);
        assert_eq!(t.stubs[0].responses[0].body, serde_json::json!({}));
        assert_eq!(t.interval_ms, 15_000);
        assert_eq!(t.input_series[0].values.len(), 4);
        assert!(t.approvals["run"].approve);
        let calls = t.expect.calls.as_ref().unwrap();
        assert_eq!(calls[1].target.as_deref(), Some("platform"));
        assert_eq!(t.expect.steps.as_ref().unwrap()[1].0, "tell_host");
    }

    #[test]
    fn unknown_fields_are_located() {
        let e = errs(&GOOD.replace("    interval: 15s", "    intervall: 15s"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("t.yaml:16:"), "{e:?}");
        assert!(e[0].contains("intervall"), "{e:?}");
    }

    #[test]
    fn every_bad_value_is_reported_with_its_place() {
        let bad = GOOD
            .replace("kind: runbook_test", "kind: runbook_tests")
            .replace("method: post", "method: FETCH")
            .replace("{status: 503}", "{status: 999}")
            .replace("answer: approve", "answer: maybe")
            .replace("role: commander", "role: boss")
            .replace("0.1+0.1x3", "0.1+0.1x")
            .replace("outcome: succeeded", "outcome: fine")
            .replace("tell_host: done", "tell_host: ok")
            .replace("- POST /api/v1/rooms/main/speakers/host/mute", "- POST")
            .replace("interval: 15s", "interval: 0s");
        let e = errs(&bad);
        let want = [
            "t.yaml:1:7: kind: expected `kind: runbook_test`, got \"runbook_tests\"",
            "t.yaml:9:17: tests[0].stubs[0].method: unknown method \"FETCH\"; expected one of: GET, POST, PUT, PATCH, DELETE",
            "tests[0].stubs[0].responses[0].status: 999 is not an HTTP status",
            "tests[0].approvals.run.answer: unknown answer \"maybe\"",
            "tests[0].approvals.run.role: unknown role \"boss\"",
            "tests[0].interval: must be greater than 0s",
            "tests[0].input_series[0].values: invalid series values",
            "tests[0].expect.outcome: unknown outcome \"fine\"; expected one of: aborted, failed, interrupted, rolled_back, succeeded",
            "tests[0].expect.steps[1].tell_host: unknown result \"ok\"",
            "tests[0].expect.calls[0]: \"POST\": expected \"METHOD /path\"",
        ];
        for w in want {
            assert!(e.iter().any(|x| x.contains(w)), "missing {w:?} in {e:#?}");
        }
        assert!(e.iter().all(|x| x.starts_with("t.yaml:")), "{e:#?}");
    }

    #[test]
    fn stubs_need_a_path_and_one_shape() {
        let bad = GOOD
            .replace(
                "path: /api/v1/rooms/main/speakers/host/mute",
                "path: api/v1?x=1",
            )
            .replace(
                "      - method: post",
                "      - status: 200\n        method: post",
            );
        let e = errs(&bad);
        assert!(
            e.iter()
                .any(|x| x.contains("must be a path starting with `/`")),
            "{e:#?}"
        );
        assert!(e.iter().any(|x| x.contains("not both")), "{e:#?}");
    }

    #[test]
    fn diffs_show_what_differs() {
        let exp: Vec<String> = ["a: done", "b: done", "c: done"].map(String::from).into();
        let got: Vec<String> = ["a: done", "b: failed", "c: done"].map(String::from).into();
        let d = diff(&exp, &got);
        let text: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "          a: done",
                "    + got b: failed",
                "    - exp b: done",
                "          c: done"
            ]
        );
    }

    /// A guarded rollback's reads are steps a test can expect, and a
    /// rollback its guard held is `held`.
    #[test]
    fn guard_reads_and_held_rollbacks_can_be_expected() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let text =
            std::fs::read_to_string(dir.join("runbooks/move-to-secondary-room.yaml")).unwrap();
        let env = crate::load::check_env(["platform".to_owned()]);
        let rb = crate::runbook::parse_runbook("move.yaml", &text, &env).unwrap();
        let tf = parse_test_file(
            "t.yaml",
            r#"kind: runbook_test
runbook: move.yaml
tests:
  - name: held
    inputs: {event: launch}
    expect:
      outcome: failed
      steps:
        - guard:move_event:origin: done
        - guard:move_event:destinaton: done
        - rollback:move_event: held
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let errs: Vec<String> = check_against(&tf, &rb, &["sim".to_owned()])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].contains("no step `guard:move_event:destinaton` (did you mean `guard:move_event:destination`?)"),
            "{errs:#?}"
        );
    }

    #[test]
    fn bodies_match_as_subsets() {
        use serde_json::json;
        assert!(subset(&json!({"room": "r"}), &json!({"room": "r", "x": 1})));
        assert!(!subset(&json!({"room": "r"}), &json!({"room": "s"})));
        assert!(subset(
            &json!({"a": {"b": 1}}),
            &json!({"a": {"b": 1, "c": 2}})
        ));
        assert!(!subset(&json!([1]), &json!([1, 2])));
    }
}
