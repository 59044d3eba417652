//! Pre-event checklists (`kind: checklist` in `runbooks/`): the model.
//!
//! A checklist names an event's parameters (`event:`: expected audience,
//! peak join rate, start, account, room...) and the checks that say
//! whether the event may go ahead. Raw types mirror the YAML with
//! `deny_unknown_fields`; [`parse_checklist`] validates them into a
//! [`Checklist`], collecting every problem with its location. Check
//! parameters are templates over `event` (`{{ event.room }}`), checked
//! here against the parameters the checklist declares.
//!
//! [`judge`] says what each kind of check concludes from what was
//! measured, with the evidence; [`verdict`] turns results into GO or
//! NO-GO. Pure: no I/O; measuring is the runner's.

pub mod judge;
pub mod report;
pub mod state;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value as Json;

use crate::diag::{Collector, Diagnostics, Pos, Sp, from_yaml, one_of};
use crate::duration::PromDuration;
use crate::roles::Role;
use crate::runbook::template::Templates;
use crate::runbook::valid_name;

pub const KIND: &str = "checklist";

/// A check's own time limit unless it gives one.
pub const DEFAULT_TIMEOUT: PromDuration = PromDuration::from_secs(10);

#[derive(Clone, Debug, PartialEq)]
pub struct Checklist {
    pub name: String,
    pub file: String,
    pub description: String,
    /// The event's parameters and their defaults; `key=value` at run time
    /// overrides them (same type).
    pub event: BTreeMap<String, Json>,
    /// When to run by itself, as durations before `event.start`.
    pub schedule: Vec<PromDuration>,
    pub checks: Vec<CheckDef>,
    /// What validation found worth fixing that does not stop it loading.
    pub warnings: Diagnostics,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Not passing makes the verdict NO-GO.
    Blocker,
    /// Reported; never changes the verdict.
    Warning,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckDef {
    pub name: String,
    pub severity: Severity,
    pub timeout: PromDuration,
    pub kind: CheckKind,
    /// What to do when it does not pass, for people (a template over
    /// `event`): shown beside the evidence of a failure.
    pub fix: Option<String>,
}

/// How a measured value is compared with the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Cmp {
    pub const ALL: [(&'static str, Cmp); 6] = [
        ("<", Cmp::Lt),
        ("<=", Cmp::Le),
        (">", Cmp::Gt),
        (">=", Cmp::Ge),
        ("==", Cmp::Eq),
        ("!=", Cmp::Ne),
    ];

    pub fn parse(s: &str) -> Option<Cmp> {
        Cmp::ALL.iter().find(|(t, _)| *t == s).map(|(_, c)| *c)
    }

    pub fn symbol(self) -> &'static str {
        Cmp::ALL
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("?", |(t, _)| t)
    }

    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
        }
    }
}

/// What a check does. String fields are templates over `event`.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckKind {
    /// Every series `expr` returns must satisfy `value OP threshold`; no
    /// series at all is a failure (nothing was measured).
    Query {
        expr: String,
        op: Cmp,
        threshold: String,
    },
    /// The room must hold the projected audience and admit the projected
    /// peak join rate, each with `headroom` to spare (0.2 = 20% more than
    /// projected).
    Capacity {
        audience: String,
        join_rate_per_min: String,
        capacity_expr: String,
        admission_per_min_expr: String,
        headroom: f64,
    },
    /// A call to a configured target answers as expected.
    Http {
        target: String,
        method: String,
        path: String,
        status: Vec<u16>,
        body_contains: Option<String>,
    },
    /// These runbooks load, validate and pass their own tests.
    Runbook { names: Vec<String> },
    /// Every target these runbooks (all loaded ones when empty) may call,
    /// through the runbooks they call too, answers `path` with its
    /// credentials: its secret resolves, and it neither refuses them
    /// (401, 403) nor fails to answer (a refused connection, a timeout,
    /// 5xx). Proven before the night, not by the first mitigation.
    Credentials { runbooks: Vec<String>, path: String },
    /// People with these roles confirm in chat before `deadline` (from the
    /// start of the run).
    Signoff {
        roles: Vec<Role>,
        deadline: PromDuration,
    },
}

impl CheckKind {
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Query { .. } => "query",
            CheckKind::Capacity { .. } => "capacity",
            CheckKind::Http { .. } => "http",
            CheckKind::Runbook { .. } => "runbook",
            CheckKind::Credentials { .. } => "credentials",
            CheckKind::Signoff { .. } => "signoff",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChecklist {
    kind: Sp<String>,
    name: Sp<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    event: BTreeMap<String, Sp<Json>>,
    #[serde(default)]
    schedule: Vec<Sp<String>>,
    checks: Vec<Sp<RawCheck>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: Sp<String>,
    severity: Option<Sp<String>>,
    timeout: Option<Sp<String>>,
    fix: Option<Sp<String>>,
    query: Option<Sp<RawQuery>>,
    capacity: Option<Sp<RawCapacity>>,
    http: Option<Sp<RawHttp>>,
    runbook: Option<Sp<RawRunbook>>,
    credentials: Option<Sp<RawCredentials>>,
    signoff: Option<Sp<RawSignoff>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    expr: Sp<String>,
    /// `"< 0.3"`: the comparison and the threshold.
    expect: Sp<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapacity {
    audience: Sp<Json>,
    join_rate_per_min: Sp<Json>,
    capacity: Sp<String>,
    admission_per_min: Sp<String>,
    #[serde(default)]
    headroom: Option<Sp<Json>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    target: Sp<String>,
    #[serde(default)]
    method: Option<Sp<String>>,
    path: Sp<String>,
    #[serde(default)]
    status: Option<Sp<Json>>,
    #[serde(default)]
    body_contains: Option<Sp<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    names: Vec<Sp<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    #[serde(default)]
    runbooks: Vec<Sp<String>>,
    path: Option<Sp<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignoff {
    roles: Vec<Sp<String>>,
    deadline: Sp<String>,
}

/// What validation checks a checklist against: the configured targets
/// and the runbooks that exist.
#[derive(Clone, Debug, Default)]
pub struct Env {
    pub targets: Vec<String>,
    pub runbooks: Vec<String>,
}

struct V<'a> {
    c: Collector<'a>,
    templates: Templates,
    event: Vec<String>,
}

impl V<'_> {
    /// A template over `event`: it compiles and reads only declared
    /// parameters.
    fn template(&mut self, sp: &Sp<String>, field: &str) -> String {
        match self.templates.check(&sp.value) {
            Ok(refs) => {
                for r in refs {
                    let known = match r.strip_prefix("event.") {
                        Some(key) => self.event.iter().any(|e| e == key),
                        None => r == "event",
                    };
                    if !known {
                        let declared = if self.event.is_empty() {
                            "this checklist declares no `event:` parameters".to_owned()
                        } else {
                            format!("declared: {}", one_of(&self.event))
                        };
                        self.c.err(
                            Pos::of(sp),
                            field,
                            format!("reads {r:?}, which is not an event parameter; {declared}"),
                        );
                    }
                }
            }
            Err(e) => self
                .c
                .err(Pos::of(sp), field, format!("bad template: {}", e.message)),
        }
        sp.value.clone()
    }

    /// A PromQL template: as [`V::template`], and a warning for each value
    /// inside a string literal that does not go through `| promql` (an
    /// override from chat could otherwise rewrite the query).
    fn promql(&mut self, sp: &Sp<String>, field: &str) -> String {
        for why in crate::runbook::template::promql_string_warnings(&sp.value) {
            self.c.warn(Pos::of(sp), field, why);
        }
        self.template(sp, field)
    }

    /// A number, or a template that renders to one.
    fn number_or_template(&mut self, sp: &Sp<Json>, field: &str) -> String {
        match &sp.value {
            Json::Number(n) => n.to_string(),
            Json::String(s) => {
                let spanned = Sp {
                    value: s.clone(),
                    referenced: sp.referenced,
                    defined: sp.defined,
                };
                self.template(&spanned, field)
            }
            other => {
                self.c.err(
                    Pos::of(sp),
                    field,
                    format!("expected a number or a template like \"{{{{ event.expected_audience }}}}\", got {other}"),
                );
                String::new()
            }
        }
    }
}

pub fn parse_checklist(file: &str, text: &str, env: &Env) -> Result<Checklist, Diagnostics> {
    let raw: RawChecklist = from_yaml(file, text)?;
    let mut v = V {
        c: Collector::new(file),
        templates: Templates::new(),
        event: raw.event.keys().cloned().collect(),
    };
    if raw.kind.value != KIND {
        v.c.err(
            Pos::of(&raw.kind),
            "kind",
            format!("expected `kind: checklist`, got {:?}", raw.kind.value),
        );
    }
    if !valid_name(&raw.name.value) {
        v.c.err(
            Pos::of(&raw.name),
            "name",
            format!(
                "invalid name {:?}; use lowercase letters, digits and dashes",
                raw.name.value
            ),
        );
    }

    let mut event = BTreeMap::new();
    for (k, sp) in &raw.event {
        match &sp.value {
            Json::String(_) | Json::Number(_) | Json::Bool(_) => {
                event.insert(k.clone(), sp.value.clone());
            }
            other => v.c.err(
                Pos::of(sp),
                format!("event.{k}"),
                format!("expected a string, number or true/false, got {other}"),
            ),
        }
    }

    let mut schedule = Vec::new();
    for (i, sp) in raw.schedule.iter().enumerate() {
        match PromDuration::parse(&sp.value) {
            Ok(d) => schedule.push(d),
            Err(e) => v.c.err(
                Pos::of(sp),
                format!("schedule[{i}]"),
                format!("{e}; expected a duration before event.start, like 60m"),
            ),
        }
    }
    if !schedule.is_empty() {
        let start = event.get("start").and_then(Json::as_str);
        if start.is_none_or(|s| chrono::DateTime::parse_from_rfc3339(s).is_err()) {
            let pos = raw.schedule.first().and_then(Pos::of);
            v.c.err(
                pos,
                "schedule",
                "needs `event.start` as a date and time with its offset, like \"2023-05-24T18:00:00-04:00\"",
            );
        }
    }

    if raw.checks.is_empty() {
        v.c.err(None, "checks", "a checklist needs at least one check");
    }
    let mut checks = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, sp) in raw.checks.iter().enumerate() {
        let r = &sp.value;
        let field = format!("checks[{i}]");
        if !valid_name(&r.name.value) {
            v.c.err(
                Pos::of(&r.name),
                format!("{field}.name"),
                format!(
                    "invalid name {:?}; use lowercase letters, digits and dashes",
                    r.name.value
                ),
            );
        }
        if let Some(first) = seen.insert(r.name.value.clone(), i) {
            v.c.err(
                Pos::of(&r.name),
                format!("{field}.name"),
                format!("{:?} is already the name of checks[{first}]", r.name.value),
            );
        }
        let severity = match r.severity.as_ref().map(|s| s.value.as_str()) {
            None | Some("blocker") => Severity::Blocker,
            Some("warning") => Severity::Warning,
            Some(other) => {
                v.c.err(
                    r.severity.as_ref().and_then(Pos::of),
                    format!("{field}.severity"),
                    format!("unknown severity {other:?}; expected blocker or warning"),
                );
                Severity::Blocker
            }
        };
        let timeout = v.c.duration(
            r.timeout.as_ref(),
            &format!("{field}.timeout"),
            DEFAULT_TIMEOUT,
        );
        if timeout.is_zero()
            && let Some(t) = &r.timeout
        {
            v.c.err(
                Pos::of(t),
                format!("{field}.timeout"),
                "must be greater than 0s",
            );
        }
        let given = [
            r.query.is_some(),
            r.capacity.is_some(),
            r.http.is_some(),
            r.runbook.is_some(),
            r.credentials.is_some(),
            r.signoff.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            v.c.err(
                Pos::of(sp),
                field.clone(),
                format!(
                    "give exactly one of query, capacity, http, runbook, credentials or signoff (got {given})"
                ),
            );
            continue;
        }
        let kind = if let Some(q) = &r.query {
            kind_query(&mut v, &q.value, &format!("{field}.query"))
        } else if let Some(c) = &r.capacity {
            kind_capacity(&mut v, &c.value, &format!("{field}.capacity"))
        } else if let Some(h) = &r.http {
            kind_http(&mut v, &h.value, &format!("{field}.http"), env)
        } else if let Some(rb) = &r.runbook {
            kind_runbook(&mut v, rb, &format!("{field}.runbook"), env)
        } else if let Some(c) = &r.credentials {
            kind_credentials(&mut v, &c.value, &format!("{field}.credentials"), env)
        } else if let Some(s) = &r.signoff {
            kind_signoff(&mut v, &s.value, &format!("{field}.signoff"))
        } else {
            unreachable!("exactly one kind was given")
        };
        let fix = r
            .fix
            .as_ref()
            .map(|f| v.template(f, &format!("{field}.fix")));
        checks.push(CheckDef {
            name: r.name.value.clone(),
            severity,
            timeout,
            kind,
            fix,
        });
    }
    let list = Checklist {
        name: raw.name.value,
        file: file.to_owned(),
        description: raw.description,
        event,
        schedule,
        checks,
        warnings: v.c.warnings,
    };
    if v.c.out.is_empty() {
        Ok(list)
    } else {
        let mut all = v.c.out;
        all.extend(list.warnings);
        Err(all)
    }
}

fn kind_query(v: &mut V<'_>, q: &RawQuery, field: &str) -> CheckKind {
    let expr = v.promql(&q.expr, &format!("{field}.expr"));
    // Without templates the expression can be checked as PromQL now.
    if !expr.contains("{{")
        && let Err(e) = crate::promql::parse(&expr)
    {
        let pos = Pos::of(&q.expr).map(|p| match e.col {
            Some(col) => p.offset_within(col as u32),
            None => p,
        });
        v.c.err(pos, format!("{field}.expr"), e.message);
    }
    let text = q.expect.value.trim();
    let split = text
        .find(|c: char| !matches!(c, '<' | '>' | '=' | '!'))
        .unwrap_or(text.len());
    let (op_text, rest) = text.split_at(split);
    let op = Cmp::parse(op_text.trim());
    let threshold = rest.trim().to_owned();
    if op.is_none() || threshold.is_empty() {
        v.c.err(
            Pos::of(&q.expect),
            format!("{field}.expect"),
            format!(
                "{:?} is not a comparison; expected one of < <= > >= == != then a number or template, like \"< 0.3\"",
                q.expect.value
            ),
        );
    } else if threshold.parse::<f64>().is_err() {
        let spanned = Sp {
            value: threshold.clone(),
            referenced: q.expect.referenced,
            defined: q.expect.defined,
        };
        v.template(&spanned, &format!("{field}.expect"));
    }
    CheckKind::Query {
        expr,
        op: op.unwrap_or(Cmp::Lt),
        threshold,
    }
}

fn kind_capacity(v: &mut V<'_>, c: &RawCapacity, field: &str) -> CheckKind {
    let audience = v.number_or_template(&c.audience, &format!("{field}.audience"));
    let join_rate_per_min =
        v.number_or_template(&c.join_rate_per_min, &format!("{field}.join_rate_per_min"));
    let capacity_expr = v.promql(&c.capacity, &format!("{field}.capacity"));
    let admission_per_min_expr =
        v.promql(&c.admission_per_min, &format!("{field}.admission_per_min"));
    let headroom = match &c.headroom {
        None => 0.2,
        Some(sp) => match parse_fraction(&sp.value) {
            Some(h) if (0.0..=10.0).contains(&h) => h,
            _ => {
                v.c.err(
                    Pos::of(sp),
                    format!("{field}.headroom"),
                    format!("{} is not a headroom; expected a percentage like 20% or a fraction like 0.2, from 0 to 10", sp.value),
                );
                0.2
            }
        },
    };
    CheckKind::Capacity {
        audience,
        join_rate_per_min,
        capacity_expr,
        admission_per_min_expr,
        headroom,
    }
}

/// `20%` or `0.2`.
fn parse_fraction(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s
            .trim()
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .map(|p| p / 100.0),
        _ => None,
    }
}

fn kind_http(v: &mut V<'_>, h: &RawHttp, field: &str, env: &Env) -> CheckKind {
    if !env.targets.contains(&h.target.value) {
        let known = if env.targets.is_empty() {
            "no targets are configured".to_owned()
        } else {
            format!("configured targets: {}", one_of(&env.targets))
        };
        v.c.err(
            Pos::of(&h.target),
            format!("{field}.target"),
            format!("unknown target {:?}; {known}", h.target.value),
        );
    }
    let method = h
        .method
        .as_ref()
        .map_or_else(|| "GET".to_owned(), |m| m.value.to_ascii_uppercase());
    if !["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"].contains(&method.as_str()) {
        v.c.err(
            h.method.as_ref().and_then(Pos::of),
            format!("{field}.method"),
            format!("unknown method {method:?}; expected GET, HEAD, POST, PUT, DELETE or PATCH"),
        );
    }
    let path = v.template(&h.path, &format!("{field}.path"));
    if !path.starts_with('/') {
        v.c.err(
            Pos::of(&h.path),
            format!("{field}.path"),
            "must start with / (it is joined to the target's URL)",
        );
    }
    let status = match &h.status {
        None => vec![200],
        Some(sp) => {
            let list: Vec<Json> = match &sp.value {
                Json::Array(a) => a.clone(),
                one => vec![one.clone()],
            };
            let parsed: Option<Vec<u16>> = list
                .iter()
                .map(|s| {
                    s.as_u64()
                        .filter(|n| (100..600).contains(n))
                        .map(|n| n as u16)
                })
                .collect();
            parsed.unwrap_or_else(|| {
                v.c.err(
                    Pos::of(sp),
                    format!("{field}.status"),
                    format!(
                        "{} is not an HTTP status or a list of them (100 to 599)",
                        sp.value
                    ),
                );
                vec![200]
            })
        }
    };
    let body_contains = h
        .body_contains
        .as_ref()
        .map(|b| v.template(b, &format!("{field}.body_contains")));
    CheckKind::Http {
        target: h.target.value.clone(),
        method,
        path,
        status,
        body_contains,
    }
}

fn kind_runbook(v: &mut V<'_>, rb: &Sp<RawRunbook>, field: &str, env: &Env) -> CheckKind {
    if rb.value.names.is_empty() {
        v.c.err(
            Pos::of(rb),
            format!("{field}.names"),
            "name at least one runbook",
        );
    }
    known_runbooks(v, &rb.value.names, &format!("{field}.names"), env);
    CheckKind::Runbook {
        names: rb.value.names.iter().map(|n| n.value.clone()).collect(),
    }
}

/// Each of `names` (the list at `field`) must be a loaded runbook.
fn known_runbooks(v: &mut V<'_>, names: &[Sp<String>], field: &str, env: &Env) {
    for (i, n) in names.iter().enumerate() {
        if !env.runbooks.contains(&n.value) {
            let hint = crate::diag::did_you_mean(&n.value, &env.runbooks)
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            v.c.err(
                Pos::of(n),
                format!("{field}[{i}]"),
                format!("no runbook named {:?}{hint}", n.value),
            );
        }
    }
}

fn kind_credentials(v: &mut V<'_>, c: &RawCredentials, field: &str, env: &Env) -> CheckKind {
    known_runbooks(v, &c.runbooks, &format!("{field}.runbooks"), env);
    let path = c.path.as_ref().map_or_else(
        || "/".to_owned(),
        |p| v.template(p, &format!("{field}.path")),
    );
    if let Some(p) = &c.path
        && !p.value.starts_with('/')
    {
        v.c.err(
            Pos::of(p),
            format!("{field}.path"),
            "must start with / (it is joined to each target's URL)",
        );
    }
    CheckKind::Credentials {
        runbooks: c.runbooks.iter().map(|n| n.value.clone()).collect(),
        path,
    }
}

fn kind_signoff(v: &mut V<'_>, s: &RawSignoff, field: &str) -> CheckKind {
    let mut roles = Vec::new();
    for (i, r) in s.roles.iter().enumerate() {
        match Role::parse(&r.value) {
            Some(role) => roles.push(role),
            None => v.c.err(
                Pos::of(r),
                format!("{field}.roles[{i}]"),
                format!(
                    "unknown role {:?}; expected viewer, responder or commander",
                    r.value
                ),
            ),
        }
    }
    if s.roles.is_empty() {
        v.c.err(
            None,
            format!("{field}.roles"),
            "name at least one role that signs off",
        );
    }
    let deadline = PromDuration::parse(&s.deadline.value).unwrap_or_else(|e| {
        v.c.err(
            Pos::of(&s.deadline),
            format!("{field}.deadline"),
            e.to_string(),
        );
        PromDuration::from_secs(600)
    });
    CheckKind::Signoff { roles, deadline }
}

/// How one check came out.
#[derive(Clone, Debug, PartialEq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "reason")]
pub enum Outcome {
    Pass,
    Fail,
    /// It could not run (a query error, a timeout, a target down): never a
    /// pass.
    Error(String),
    /// A sign-off not given yet.
    Waiting,
}

/// One check's result, with what it compared.
#[derive(Clone, Debug, PartialEq, serde::Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub kind: String,
    pub severity: Severity,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// What was measured against what, for people: `capacity 500,000 <
    /// needed 720,000 (600,000 + 20%)`.
    pub evidence: String,
    pub took_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Verdict {
    Go,
    NoGo,
}

/// GO when every blocker passed. A blocker that failed, could not run or
/// waits for a sign-off is NO-GO; warnings never change the verdict.
pub fn verdict(results: &[CheckResult]) -> Verdict {
    if results
        .iter()
        .any(|r| r.severity == Severity::Blocker && r.outcome != Outcome::Pass)
    {
        Verdict::NoGo
    } else {
        Verdict::Go
    }
}

/// The event's parameters for one run: the checklist's, overridden by
/// `key=value` pairs. A value takes the type of the parameter it replaces;
/// an unknown key or a value of the wrong type is an error that says what
/// would be valid.
pub fn event_params(
    list: &Checklist,
    overrides: &[(String, String)],
) -> Result<BTreeMap<String, Json>, ParamError> {
    let mut out = list.event.clone();
    for (k, v) in overrides {
        let Some(old) = list.event.get(k) else {
            return Err(ParamError::Unknown {
                checklist: list.name.clone(),
                name: k.clone(),
                known: list.event.keys().cloned().collect(),
            });
        };
        let wrong = |wanted| ParamError::Type {
            name: k.clone(),
            value: v.clone(),
            wanted,
        };
        let new = match old {
            Json::Number(_) => v
                .parse::<f64>()
                .ok()
                .and_then(|f| serde_json::Number::from_f64(f).map(Json::Number))
                .ok_or_else(|| wrong("a number"))?,
            Json::Bool(_) => match v.as_str() {
                "true" => Json::Bool(true),
                "false" => Json::Bool(false),
                _ => return Err(wrong("true or false")),
            },
            _ => Json::String(v.clone()),
        };
        out.insert(k.clone(), new);
    }
    Ok(out)
}

/// Why an event parameter given for a run cannot be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error(
        "{checklist} has no event parameter {name:?}; it has {}",
        if known.is_empty() { "none".to_owned() } else { one_of(known) }
    )]
    Unknown {
        checklist: String,
        name: String,
        known: Vec<String>,
    },
    #[error("{name}={value}: expected {wanted}")]
    Type {
        name: String,
        value: String,
        wanted: &'static str,
    },
}

#[cfg(test)]
mod tests;
