//! The instant evaluator: selectors with lookback, `offset` and `@`,
//! subqueries, unary and binary operators with vector matching, and
//! aggregations. Functions are in `functions`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Expr, LabelModifier, Offset, SubqueryExpr,
    VectorMatchCardinality, VectorSelector,
};

use super::{DEFAULT_SUBQUERY_STEP_MS, EvalError, LOOKBACK_MS, Sample, Series, Value};
use crate::duration::Millis;
use crate::labels::{Labels, METRIC_NAME};
use crate::matchers::{MatchOp, Matcher};
use crate::tsdb::{SeriesStore, is_stale};

pub(super) struct Evaluator<'a> {
    pub(super) store: &'a SeriesStore,
    /// The query's own time: what `@ start()` and `@ end()` mean for an
    /// instant query.
    pub(super) query_time: Millis,
    /// Subquery steps evaluated so far, across the whole query: nested
    /// subqueries multiply their steps, so each is bounded alone and all
    /// of them together (see [`MAX_SUBQUERY_STEPS`]).
    steps: std::cell::Cell<u64>,
}

/// Subquery steps one query may evaluate in all. One subquery may take
/// 11,000, as in Prometheus; two nested could take 121 million and hold
/// the watcher for minutes, so the total is bounded too.
pub const MAX_SUBQUERY_STEPS: u64 = 100_000;

/// An instant-vector element that remembers its sample's timestamp, which
/// `timestamp()` needs.
pub(super) struct TimedSample {
    pub labels: Labels,
    pub ts: Millis,
    pub value: f64,
}

/// A range-vector argument with the window it was selected over, which the
/// extrapolating functions need.
pub(super) struct RangeArg {
    pub series: Vec<Series>,
    pub start: Millis,
    pub end: Millis,
}

pub(super) fn dur_ms(d: &Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX / 4)
}

fn system_time_ms(t: &SystemTime) -> Millis {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => dur_ms(&d),
        Err(e) => -dur_ms(&e.duration()),
    }
}

pub(super) fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

impl<'a> Evaluator<'a> {
    pub(super) fn new(store: &'a SeriesStore, query_time: Millis) -> Self {
        Evaluator {
            store,
            query_time,
            steps: std::cell::Cell::new(0),
        }
    }

    pub(super) fn eval(&self, e: &Expr, t: Millis) -> Result<Value, EvalError> {
        match e {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(v) => Ok(Value::Vector(
                    v.into_iter()
                        .map(|s| Sample {
                            labels: s.labels.without_metric_name(),
                            value: -s.value,
                        })
                        .collect(),
                )),
                other => Err(EvalError::Type(format!(
                    "unary minus needs a scalar or instant vector, got {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(
                self.instant_selector(vs, t)?
                    .into_iter()
                    .map(|s| Sample {
                        labels: s.labels,
                        value: s.value,
                    })
                    .collect(),
            )),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                Ok(Value::Matrix(self.range_arg(e, t)?.series))
            }
            Expr::Aggregate(a) => self.aggregate(a, t),
            Expr::Binary(b) => {
                let v = self.binary(b, t)?;
                check_unique(&v)?;
                Ok(v)
            }
            Expr::Call(c) => {
                let v = self.call(c, t)?;
                check_unique(&v)?;
                Ok(v)
            }
            Expr::Extension(x) => Err(EvalError::Unsupported(format!(
                "extension expression {}",
                x.expr.name()
            ))),
        }
    }

    pub(super) fn eval_vector(
        &self,
        e: &Expr,
        t: Millis,
        what: &str,
    ) -> Result<Vec<Sample>, EvalError> {
        match self.eval(e, t)? {
            Value::Vector(v) => Ok(v),
            other => Err(EvalError::Type(format!(
                "{what} needs an instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    pub(super) fn eval_scalar(&self, e: &Expr, t: Millis, what: &str) -> Result<f64, EvalError> {
        match self.eval(e, t)? {
            Value::Scalar(v) => Ok(v),
            other => Err(EvalError::Type(format!(
                "{what} needs a scalar, got {}",
                other.type_name()
            ))),
        }
    }

    pub(super) fn eval_string(&self, e: &Expr, t: Millis, what: &str) -> Result<String, EvalError> {
        match self.eval(e, t)? {
            Value::String(v) => Ok(v),
            other => Err(EvalError::Type(format!(
                "{what} needs a string, got {}",
                other.type_name()
            ))),
        }
    }

    /// The time a selector reads at, after `@` and `offset`.
    pub(super) fn ref_time(
        &self,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
        t: Millis,
    ) -> Millis {
        let base = match at {
            None => t,
            Some(AtModifier::Start) | Some(AtModifier::End) => self.query_time,
            Some(AtModifier::At(st)) => system_time_ms(st),
        };
        match offset {
            None => base,
            Some(Offset::Pos(d)) => base - dur_ms(d),
            Some(Offset::Neg(d)) => base + dur_ms(d),
        }
    }

    pub(super) fn matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, EvalError> {
        if !vs.matchers.or_matchers.is_empty() {
            return Err(EvalError::Unsupported(
                "`or` inside a selector's braces (Prometheus 3.x syntax)".to_owned(),
            ));
        }
        let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
        if let Some(name) = &vs.name {
            out.push(
                Matcher::new(METRIC_NAME, MatchOp::Equal, name.clone())
                    .map_err(|e| EvalError::Invalid(e.message))?,
            );
        }
        for m in &vs.matchers.matchers {
            let name = m.name.clone();
            let value = m.value.clone();
            let matcher = match &m.op {
                PMatchOp::Equal => Matcher::new(name, MatchOp::Equal, value),
                PMatchOp::NotEqual => Matcher::new(name, MatchOp::NotEqual, value),
                PMatchOp::Re(re) => Ok(Matcher::with_compiled_regex(
                    name,
                    MatchOp::Regex,
                    value,
                    re.clone(),
                )),
                PMatchOp::NotRe(re) => Ok(Matcher::with_compiled_regex(
                    name,
                    MatchOp::NotRegex,
                    value,
                    re.clone(),
                )),
            }
            .map_err(|e| EvalError::Invalid(e.message))?;
            out.push(matcher);
        }
        Ok(out)
    }

    /// The newest sample of each matching series in `[ref - 5m, ref]`
    /// (closed on the left, as in 2.42); a staleness marker as the newest
    /// sample means the series has ended.
    pub(super) fn instant_selector(
        &self,
        vs: &VectorSelector,
        t: Millis,
    ) -> Result<Vec<TimedSample>, EvalError> {
        let matchers = Self::matchers(vs)?;
        let r = self.ref_time(&vs.at, &vs.offset, t);
        let mut out = Vec::new();
        for s in self.store.select(&matchers) {
            if let Some((ts, v)) = s.latest(r - LOOKBACK_MS - 1, r)
                && !is_stale(v)
            {
                out.push(TimedSample {
                    labels: s.labels.clone(),
                    ts,
                    value: v,
                });
            }
        }
        Ok(out)
    }

    /// A matrix selector or subquery, evaluated to its series and window.
    pub(super) fn range_arg(&self, e: &Expr, t: Millis) -> Result<RangeArg, EvalError> {
        match unparen(e) {
            Expr::MatrixSelector(ms) => {
                let matchers = Self::matchers(&ms.vs)?;
                let end = self.ref_time(&ms.vs.at, &ms.vs.offset, t);
                let start = end - dur_ms(&ms.range);
                let mut series = Vec::new();
                for s in self.store.select(&matchers) {
                    // `start - 1`: the store's range is left-open, 2.42's is
                    // closed.
                    let samples: Vec<(Millis, f64)> = s
                        .range(start - 1, end)
                        .iter()
                        .copied()
                        .filter(|(_, v)| !is_stale(*v))
                        .collect();
                    if !samples.is_empty() {
                        series.push(Series {
                            labels: s.labels.clone(),
                            samples,
                        });
                    }
                }
                Ok(RangeArg { series, start, end })
            }
            Expr::Subquery(sq) => self.subquery(sq, t),
            other => Err(EvalError::Type(format!(
                "expected a range vector (a selector with [range] or a subquery), got {other}"
            ))),
        }
    }

    fn subquery(&self, sq: &SubqueryExpr, t: Millis) -> Result<RangeArg, EvalError> {
        let end = self.ref_time(&sq.at, &sq.offset, t);
        let range = dur_ms(&sq.range);
        let step = sq
            .step
            .as_ref()
            .map(dur_ms)
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
        let start = end - range;
        // The first step-aligned instant at or after the window's start.
        let mut ts = start.div_euclid(step) * step;
        if ts < start {
            ts += step;
        }
        if (end - ts) / step > 11_000 {
            return Err(EvalError::Invalid(format!(
                "subquery {sq} would evaluate more than 11000 steps"
            )));
        }
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut series: Vec<Series> = Vec::new();
        while ts <= end {
            let spent = self.steps.get() + 1;
            if spent > MAX_SUBQUERY_STEPS {
                return Err(EvalError::Invalid(format!(
                    "subqueries of this query would evaluate more than {MAX_SUBQUERY_STEPS} steps in all; nest fewer, or use a longer step"
                )));
            }
            self.steps.set(spent);
            let points = match self.eval(&sq.expr, ts)? {
                Value::Vector(v) => v,
                Value::Scalar(v) => vec![Sample {
                    labels: Labels::new(),
                    value: v,
                }],
                other => {
                    return Err(EvalError::Type(format!(
                        "subquery needs an instant vector inside, got {}",
                        other.type_name()
                    )));
                }
            };
            for s in points {
                let i = *index.entry(s.labels.clone()).or_insert_with(|| {
                    series.push(Series {
                        labels: s.labels,
                        samples: Vec::new(),
                    });
                    series.len() - 1
                });
                series[i].samples.push((ts, s.value));
            }
            ts += step;
        }
        Ok(RangeArg { series, start, end })
    }

    // ---- binary operators ----

    fn binary(&self, b: &BinaryExpr, t: Millis) -> Result<Value, EvalError> {
        if let Some(v) = self.fast_binary(b, t) {
            return v;
        }
        let op = b.op.to_string();
        let return_bool = b.return_bool();
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let (v, keep) = scalar_op(&op, l, r)?;
                if is_comparison(&op) {
                    // The parser only lets `bool` comparisons through here.
                    Ok(Value::Scalar(if keep { 1.0 } else { 0.0 }))
                } else {
                    Ok(Value::Scalar(v))
                }
            }
            (Value::Vector(v), Value::Scalar(s)) => {
                self.vector_scalar(&op, v, s, false, return_bool)
            }
            (Value::Scalar(s), Value::Vector(v)) => {
                self.vector_scalar(&op, v, s, true, return_bool)
            }
            (Value::Vector(l), Value::Vector(r)) => {
                let card = b
                    .modifier
                    .as_ref()
                    .map(|m| m.card.clone())
                    .unwrap_or(VectorMatchCardinality::OneToOne);
                let matching = b.modifier.as_ref().and_then(|m| m.matching.clone());
                if let Some(m) = &b.modifier
                    && (m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
                {
                    return Err(EvalError::Unsupported(
                        "fill modifiers (Prometheus 3.x)".to_owned(),
                    ));
                }
                match op.as_str() {
                    "and" => Ok(Value::Vector(set_and(l, r, &matching))),
                    "or" => Ok(Value::Vector(set_or(l, r, &matching))),
                    "unless" => Ok(Value::Vector(set_unless(l, r, &matching))),
                    _ => vector_vector(&op, l, r, &card, &matching, return_bool).map(Value::Vector),
                }
            }
            (l, r) => Err(EvalError::Type(format!(
                "operator {op} is not defined between {} and {}",
                l.type_name(),
                r.type_name()
            ))),
        }
    }

    fn vector_scalar(
        &self,
        op: &str,
        v: Vec<Sample>,
        s: f64,
        scalar_on_left: bool,
        return_bool: bool,
    ) -> Result<Value, EvalError> {
        if is_set(op) {
            return Err(EvalError::Type(format!(
                "set operator {op} needs instant vectors on both sides"
            )));
        }
        let mut out = Vec::with_capacity(v.len());
        for sample in v {
            let (l, r) = if scalar_on_left {
                (s, sample.value)
            } else {
                (sample.value, s)
            };
            let (mut value, keep) = scalar_op(op, l, r)?;
            // A comparison keeps the vector's value, whichever side it is on.
            if is_comparison(op) && scalar_on_left {
                value = r;
            }
            let labels = if drops_name(op) || return_bool {
                sample.labels.without_metric_name()
            } else {
                sample.labels
            };
            if return_bool {
                out.push(Sample {
                    labels,
                    value: if keep { 1.0 } else { 0.0 },
                });
            } else if keep {
                out.push(Sample { labels, value });
            }
        }
        Ok(Value::Vector(out))
    }

    // ---- aggregations ----

    fn aggregate(&self, a: &AggregateExpr, t: Millis) -> Result<Value, EvalError> {
        if let Some(v) = self.fast_aggregate(a, t) {
            return v;
        }
        let op = a.op.to_string();
        let input = self.eval_vector(&a.expr, t, &format!("{op}()"))?;
        let param = match &a.param {
            Some(p) => Some(self.eval(p, t)?),
            None => None,
        };
        super::functions::aggregate(&op, input, param, &a.modifier)
    }
}

// ---- helpers shared with `functions` ----

pub(super) fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

pub(super) fn is_set(op: &str) -> bool {
    matches!(op, "and" | "or" | "unless")
}

pub(super) fn drops_name(op: &str) -> bool {
    matches!(op, "+" | "-" | "*" | "/" | "%" | "^" | "atan2")
}

/// The value and whether the element survives (comparisons filter).
pub(super) fn scalar_op(op: &str, l: f64, r: f64) -> Result<(f64, bool), EvalError> {
    Ok(match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        // Go's math.Mod and Rust's `%` both take the dividend's sign.
        "%" => (l % r, true),
        "^" => (l.powf(r), true),
        "atan2" => (l.atan2(r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        other => {
            return Err(EvalError::Unsupported(format!("binary operator {other}")));
        }
    })
}

/// The labels two vector elements are matched on.
fn signature(labels: &Labels, matching: &Option<LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => labels
            .iter()
            .filter(|(k, _)| on.labels.iter().any(|l| l == k))
            .collect(),
        Some(LabelModifier::Exclude(ign)) => labels
            .iter()
            .filter(|(k, _)| *k != METRIC_NAME && !ign.labels.iter().any(|l| l == k))
            .collect(),
        None => labels.without_metric_name(),
    }
}

fn set_and(l: Vec<Sample>, r: Vec<Sample>, m: &Option<LabelModifier>) -> Vec<Sample> {
    let right: HashSet<Labels> = r.iter().map(|s| signature(&s.labels, m)).collect();
    l.into_iter()
        .filter(|s| right.contains(&signature(&s.labels, m)))
        .collect()
}

fn set_or(l: Vec<Sample>, r: Vec<Sample>, m: &Option<LabelModifier>) -> Vec<Sample> {
    let left: HashSet<Labels> = l.iter().map(|s| signature(&s.labels, m)).collect();
    let mut out = l;
    out.extend(
        r.into_iter()
            .filter(|s| !left.contains(&signature(&s.labels, m))),
    );
    out
}

fn set_unless(l: Vec<Sample>, r: Vec<Sample>, m: &Option<LabelModifier>) -> Vec<Sample> {
    let right: HashSet<Labels> = r.iter().map(|s| signature(&s.labels, m)).collect();
    l.into_iter()
        .filter(|s| !right.contains(&signature(&s.labels, m)))
        .collect()
}

fn vector_vector(
    op: &str,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    card: &VectorMatchCardinality,
    matching: &Option<LabelModifier>,
    return_bool: bool,
) -> Result<Vec<Sample>, EvalError> {
    let (include, one_to_many) = match card {
        VectorMatchCardinality::OneToOne => (Vec::new(), false),
        VectorMatchCardinality::ManyToOne(ls) => (ls.labels.clone(), false),
        VectorMatchCardinality::OneToMany(ls) => (ls.labels.clone(), true),
        VectorMatchCardinality::ManyToMany => {
            return Err(EvalError::Matching(format!(
                "many-to-many matching is only allowed for set operators, not {op}"
            )));
        }
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    // `many` is the side whose every element may produce output; the `one`
    // side must be unique per signature.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let one_side = if one_to_many { "left" } else { "right" };
    let mut one_by_sig: HashMap<Labels, &Sample> = HashMap::new();
    for s in &one {
        let sig = signature(&s.labels, matching);
        if let Some(prev) = one_by_sig.insert(sig.clone(), s) {
            return Err(EvalError::Matching(format!(
                "found duplicate series for the match group {sig} on the {one_side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                prev.labels, s.labels
            )));
        }
    }
    let mut matched: HashMap<Labels, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for ms in &many {
        let sig = signature(&ms.labels, matching);
        let Some(os) = one_by_sig.get(&sig) else {
            continue;
        };
        let (l, r) = if one_to_many {
            (os.value, ms.value)
        } else {
            (ms.value, os.value)
        };
        let (mut value, keep) = scalar_op(op, l, r)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let labels = result_labels(
            &ms.labels,
            &os.labels,
            op,
            one_to_one,
            matching,
            &include,
            return_bool,
        );
        let seen = matched.entry(sig).or_default();
        if one_to_one {
            if !seen.is_empty() {
                return Err(EvalError::Matching(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".to_owned(),
                ));
            }
            seen.insert(Labels::new());
        } else if !seen.insert(labels.clone()) {
            return Err(EvalError::Matching(
                "multiple matches for labels: grouping labels must ensure unique matches"
                    .to_owned(),
            ));
        }
        out.push(Sample { labels, value });
    }
    Ok(out)
}

fn result_labels(
    many: &Labels,
    one: &Labels,
    op: &str,
    one_to_one: bool,
    matching: &Option<LabelModifier>,
    include: &[String],
    return_bool: bool,
) -> Labels {
    let mut out = if drops_name(op) || return_bool {
        many.without_metric_name()
    } else {
        many.clone()
    };
    if one_to_one {
        match matching {
            Some(LabelModifier::Include(on)) => {
                out = out
                    .iter()
                    .filter(|(k, _)| on.labels.iter().any(|l| l == k))
                    .collect();
            }
            Some(LabelModifier::Exclude(ign)) => {
                for l in &ign.labels {
                    out.remove(l);
                }
            }
            None => {}
        }
    }
    for l in include {
        match one.get(l) {
            Some(v) => out.set(l.clone(), v),
            None => {
                out.remove(l);
            }
        }
    }
    out
}

/// Prometheus refuses results in which two elements share a label set
/// (typically after a function dropped `__name__`).
fn check_unique(v: &Value) -> Result<(), EvalError> {
    if let Value::Vector(samples) = v {
        let mut seen = HashSet::with_capacity(samples.len());
        for s in samples {
            if !seen.insert(&s.labels) {
                return Err(EvalError::Matching(format!(
                    "vector cannot contain metrics with the same labelset: {}",
                    s.labels
                )));
            }
        }
    }
    Ok(())
}
