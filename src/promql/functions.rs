//! PromQL's function library and aggregation operators, with 2.42's
//! numerics: extrapolated rates, least-squares regression, classic
//! histogram bucket interpolation, and the NaN/Inf conventions.

use std::collections::HashMap;

use chrono::{Datelike, TimeZone, Timelike, Utc};
use promql_parser::parser::{Call, Expr, LabelModifier};
use regex::Regex;

use super::eval::{Evaluator, RangeArg, unparen};
use super::{EvalError, Sample, Value};
use crate::duration::Millis;
use crate::labels::{Labels, METRIC_NAME};
use crate::matchers::{MatchOp, is_valid_label_name};

impl Evaluator<'_> {
    pub(super) fn call(&self, c: &Call, t: Millis) -> Result<Value, EvalError> {
        let name = c.func.name;
        let args: Vec<&Expr> = c.args.args.iter().map(|b| b.as_ref()).collect();
        let arg = |i: usize| -> Result<&Expr, EvalError> {
            args.get(i)
                .copied()
                .ok_or_else(|| EvalError::Type(format!("{name}() is missing argument {}", i + 1)))
        };
        let what = format!("{name}()");
        match name {
            // Range-vector functions.
            "rate" | "increase" | "delta" | "irate" | "idelta" | "deriv" | "resets" | "changes"
            | "avg_over_time" | "min_over_time" | "max_over_time" | "sum_over_time"
            | "count_over_time" | "last_over_time" | "stddev_over_time" | "stdvar_over_time"
            | "present_over_time" => {
                if let Some(v) = self.fast_call(c, t) {
                    return v;
                }
                let ra = self.range_arg(arg(0)?, t)?;
                Ok(Value::Vector(range_fn(name, &ra)))
            }
            "quantile_over_time" => {
                let q = self.eval_scalar(arg(0)?, t, &what)?;
                let ra = self.range_arg(arg(1)?, t)?;
                Ok(Value::Vector(
                    ra.series
                        .iter()
                        .map(|s| Sample {
                            labels: s.labels.without_metric_name(),
                            value: quantile(q, s.samples.iter().map(|p| p.1).collect()),
                        })
                        .collect(),
                ))
            }
            "predict_linear" => {
                let ra = self.range_arg(arg(0)?, t)?;
                let secs = self.eval_scalar(arg(1)?, t, &what)?;
                let mut out = Vec::new();
                for s in &ra.series {
                    if s.samples.len() < 2 {
                        continue;
                    }
                    // Intercept at the evaluation time, as Prometheus does.
                    let (slope, intercept) = linear_regression(&s.samples, t);
                    out.push(Sample {
                        labels: s.labels.without_metric_name(),
                        value: intercept + slope * secs,
                    });
                }
                Ok(Value::Vector(out))
            }
            "absent_over_time" => {
                let ra = self.range_arg(arg(0)?, t)?;
                if ra.series.is_empty() {
                    Ok(Value::Vector(vec![Sample {
                        labels: absent_labels(arg(0)?),
                        value: 1.0,
                    }]))
                } else {
                    Ok(Value::Vector(Vec::new()))
                }
            }
            "absent" => {
                let v = self.eval_vector(arg(0)?, t, &what)?;
                if v.is_empty() {
                    Ok(Value::Vector(vec![Sample {
                        labels: absent_labels(arg(0)?),
                        value: 1.0,
                    }]))
                } else {
                    Ok(Value::Vector(Vec::new()))
                }
            }
            "histogram_quantile" => {
                let q = self.eval_scalar(arg(0)?, t, &what)?;
                let v = self.eval_vector(arg(1)?, t, &what)?;
                Ok(Value::Vector(histogram_quantile(q, v)))
            }
            "label_replace" => {
                let v = self.eval_vector(arg(0)?, t, &what)?;
                let dst = self.eval_string(arg(1)?, t, &what)?;
                let repl = self.eval_string(arg(2)?, t, &what)?;
                let src = self.eval_string(arg(3)?, t, &what)?;
                let re = self.eval_string(arg(4)?, t, &what)?;
                label_replace(v, &dst, &repl, &src, &re).map(Value::Vector)
            }
            "label_join" => {
                let v = self.eval_vector(arg(0)?, t, &what)?;
                let dst = self.eval_string(arg(1)?, t, &what)?;
                let sep = self.eval_string(arg(2)?, t, &what)?;
                let mut srcs = Vec::new();
                for a in args.iter().skip(3) {
                    srcs.push(self.eval_string(a, t, &what)?);
                }
                if !is_valid_label_name(&dst) {
                    return Err(EvalError::Invalid(format!(
                        "invalid destination label name in label_join(): {dst}"
                    )));
                }
                Ok(Value::Vector(
                    v.into_iter()
                        .map(|mut s| {
                            let joined = srcs
                                .iter()
                                .map(|l| s.labels.get(l).unwrap_or(""))
                                .collect::<Vec<_>>()
                                .join(&sep);
                            s.labels.set(dst.clone(), joined);
                            s
                        })
                        .collect(),
                ))
            }
            "clamp" => {
                let v = self.eval_vector(arg(0)?, t, &what)?;
                let lo = self.eval_scalar(arg(1)?, t, &what)?;
                let hi = self.eval_scalar(arg(2)?, t, &what)?;
                if hi < lo {
                    return Ok(Value::Vector(Vec::new()));
                }
                Ok(map_values(v, |x| go_max(lo, go_min(hi, x))))
            }
            "clamp_min" => {
                let v = self.eval_vector(arg(0)?, t, &what)?;
                let lo = self.eval_scalar(arg(1)?, t, &what)?;
                Ok(map_values(v, |x| go_max(x, lo)))
            }
            "clamp_max" => {
                let v = self.eval_vector(arg(0)?, t, &what)?;
                let hi = self.eval_scalar(arg(1)?, t, &what)?;
                Ok(map_values(v, |x| go_min(x, hi)))
            }
            "round" => {
                let v = self.eval_vector(arg(0)?, t, &what)?;
                let to = match args.get(1) {
                    Some(e) => self.eval_scalar(e, t, &what)?,
                    None => 1.0,
                };
                let inv = 1.0 / to;
                Ok(map_values(v, |x| (x * inv + 0.5).floor() / inv))
            }
            "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn" | "deg"
            | "rad" | "sin" | "cos" | "tan" | "asin" | "acos" | "atan" | "sinh" | "cosh"
            | "tanh" | "asinh" | "acosh" | "atanh" => {
                let v = self.eval_vector(arg(0)?, t, &what)?;
                let f: fn(f64) -> f64 = match name {
                    "abs" => f64::abs,
                    "ceil" => f64::ceil,
                    "floor" => f64::floor,
                    "exp" => f64::exp,
                    "ln" => f64::ln,
                    "log2" => f64::log2,
                    "log10" => f64::log10,
                    "sqrt" => f64::sqrt,
                    "sgn" => |x: f64| {
                        if x > 0.0 {
                            1.0
                        } else if x < 0.0 {
                            -1.0
                        } else {
                            x
                        }
                    },
                    "deg" => f64::to_degrees,
                    "rad" => f64::to_radians,
                    "sin" => f64::sin,
                    "cos" => f64::cos,
                    "tan" => f64::tan,
                    "asin" => f64::asin,
                    "acos" => f64::acos,
                    "atan" => f64::atan,
                    "sinh" => f64::sinh,
                    "cosh" => f64::cosh,
                    "tanh" => f64::tanh,
                    "asinh" => f64::asinh,
                    "acosh" => f64::acosh,
                    _ => f64::atanh,
                };
                Ok(map_values(v, f))
            }
            "time" => Ok(Value::Scalar(t as f64 / 1000.0)),
            "pi" => Ok(Value::Scalar(std::f64::consts::PI)),
            "vector" => {
                let s = self.eval_scalar(arg(0)?, t, &what)?;
                Ok(Value::Vector(vec![Sample {
                    labels: Labels::new(),
                    value: s,
                }]))
            }
            "scalar" => {
                let v = self.eval_vector(arg(0)?, t, &what)?;
                Ok(Value::Scalar(if v.len() == 1 {
                    v[0].value
                } else {
                    f64::NAN
                }))
            }
            "timestamp" => {
                // A bare selector reports its samples' own timestamps; any
                // other expression's samples are stamped at the evaluation
                // time.
                if let Expr::VectorSelector(vs) = unparen(arg(0)?) {
                    let v = self.instant_selector(vs, t)?;
                    return Ok(Value::Vector(
                        v.into_iter()
                            .map(|s| Sample {
                                labels: s.labels.without_metric_name(),
                                value: s.ts as f64 / 1000.0,
                            })
                            .collect(),
                    ));
                }
                let v = self.eval_vector(arg(0)?, t, &what)?;
                Ok(map_values(v, |_| t as f64 / 1000.0))
            }
            "sort" | "sort_desc" => {
                let mut v = self.eval_vector(arg(0)?, t, &what)?;
                let desc = name == "sort_desc";
                v.sort_by(|a, b| match (a.value.is_nan(), b.value.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if desc => b.value.total_cmp(&a.value),
                    _ => a.value.total_cmp(&b.value),
                });
                Ok(Value::Vector(v))
            }
            "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year"
            | "days_in_month" | "month" | "year" => {
                let v = match args.first() {
                    Some(e) => self.eval_vector(e, t, &what)?,
                    None => vec![Sample {
                        labels: Labels::new(),
                        value: t as f64 / 1000.0,
                    }],
                };
                Ok(map_values(v, |x| date_part(name, x)))
            }
            other => Err(EvalError::Unsupported(format!("function {other}()"))),
        }
    }
}

fn map_values(v: Vec<Sample>, f: impl Fn(f64) -> f64) -> Value {
    Value::Vector(
        v.into_iter()
            .map(|s| Sample {
                labels: s.labels.without_metric_name(),
                value: f(s.value),
            })
            .collect(),
    )
}

/// Go's math.Max: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's math.Min: NaN wins.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn date_part(name: &str, secs: f64) -> f64 {
    if !secs.is_finite() {
        return f64::NAN;
    }
    let Some(dt) = Utc.timestamp_opt(secs.floor() as i64, 0).single() else {
        return f64::NAN;
    };
    match name {
        "minute" => f64::from(dt.minute()),
        "hour" => f64::from(dt.hour()),
        "day_of_week" => f64::from(dt.weekday().num_days_from_sunday()),
        "day_of_month" => f64::from(dt.day()),
        "day_of_year" => f64::from(dt.ordinal()),
        "month" => f64::from(dt.month()),
        "year" => f64::from(dt.year()),
        _ => {
            let (y, m) = (dt.year(), dt.month());
            let next = if m == 12 {
                Utc.with_ymd_and_hms(y + 1, 1, 1, 0, 0, 0)
            } else {
                Utc.with_ymd_and_hms(y, m + 1, 1, 0, 0, 0)
            };
            let this = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0);
            match (this.single(), next.single()) {
                (Some(a), Some(b)) => (b - a).num_days() as f64,
                _ => f64::NAN,
            }
        }
    }
}

/// The labels `absent()` reports: the selector's equality matchers, unless a
/// name is constrained twice.
fn absent_labels(arg: &Expr) -> Labels {
    let vs = match unparen(arg) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::new(),
    };
    let Ok(ms) = Evaluator::matchers(vs) else {
        return Labels::new();
    };
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for m in &ms {
        *counts.entry(m.name.as_str()).or_default() += 1;
    }
    ms.iter()
        .filter(|m| m.op == MatchOp::Equal && m.name != METRIC_NAME && counts[m.name.as_str()] == 1)
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect()
}

fn label_replace(
    v: Vec<Sample>,
    dst: &str,
    repl: &str,
    src: &str,
    re: &str,
) -> Result<Vec<Sample>, EvalError> {
    let regex = Regex::new(&format!("^(?:{re})$")).map_err(|e| {
        EvalError::Invalid(format!(
            "invalid regular expression in label_replace(): {re}: {e}"
        ))
    })?;
    if !is_valid_label_name(dst) {
        return Err(EvalError::Invalid(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    Ok(v.into_iter()
        .map(|mut s| {
            let value = s.labels.get(src).unwrap_or("").to_owned();
            if let Some(caps) = regex.captures(&value) {
                let mut out = String::new();
                caps.expand(repl, &mut out);
                s.labels.set(dst.to_owned(), out);
            }
            s
        })
        .collect())
}

/// Prometheus's `quantile`: linear interpolation between closest ranks.
pub(super) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let w = rank - rank.floor();
    values[lower as usize] * (1.0 - w) + values[upper as usize] * w
}

fn range_fn(name: &str, ra: &RangeArg) -> Vec<Sample> {
    let mut out = Vec::new();
    for s in &ra.series {
        if let Some(value) = range_value(name, &s.samples, ra.start, ra.end) {
            let labels = if name == "last_over_time" {
                s.labels.clone()
            } else {
                s.labels.without_metric_name()
            };
            out.push(Sample { labels, value });
        }
    }
    out
}

/// The functions whose result for a series depends only on that series'
/// samples in the window, so the evaluator can compute them straight from
/// the store.
pub(super) fn is_simple_range_fn(name: &str) -> bool {
    matches!(
        name,
        "rate"
            | "increase"
            | "delta"
            | "irate"
            | "idelta"
            | "deriv"
            | "resets"
            | "changes"
            | "avg_over_time"
            | "min_over_time"
            | "max_over_time"
            | "sum_over_time"
            | "count_over_time"
            | "last_over_time"
            | "stddev_over_time"
            | "stdvar_over_time"
            | "present_over_time"
    )
}

/// One series' result of a simple range function over the window
/// `[start, end]`; `p` holds its samples in it, staleness markers removed.
pub(super) fn range_value(
    name: &str,
    p: &[(Millis, f64)],
    start: Millis,
    end: Millis,
) -> Option<f64> {
    match name {
        "rate" => extrapolated_rate(p, start, end, true, true),
        "increase" => extrapolated_rate(p, start, end, true, false),
        "delta" => extrapolated_rate(p, start, end, false, false),
        "irate" => instant_delta(p, true),
        "idelta" => instant_delta(p, false),
        "deriv" => (p.len() >= 2).then(|| linear_regression(p, p[0].0).0),
        "resets" => Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
        "changes" => Some(
            p.windows(2)
                .filter(|w| !(w[1].1 == w[0].1 || (w[1].1.is_nan() && w[0].1.is_nan())))
                .count() as f64,
        ),
        _ => over_time(name, p),
    }
}

fn over_time(name: &str, samples: &[(Millis, f64)]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let vals = samples.iter().map(|p| p.1);
    Some(match name {
        "avg_over_time" => {
            let mut mean: f64 = 0.0;
            let mut count = 0.0;
            for v in vals {
                count += 1.0;
                if mean.is_infinite() {
                    if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                        continue;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        continue;
                    }
                }
                mean += v / count - mean / count;
            }
            mean
        }
        "min_over_time" => vals.fold(f64::NAN, |m, v| if v < m || m.is_nan() { v } else { m }),
        "max_over_time" => vals.fold(f64::NAN, |m, v| if v > m || m.is_nan() { v } else { m }),
        // Plain summation, as 2.42 does (Kahan came later).
        "sum_over_time" => vals.fold(0.0, |a, b| a + b),
        "count_over_time" => samples.len() as f64,
        "last_over_time" => samples[samples.len() - 1].1,
        "present_over_time" => 1.0,
        "stddev_over_time" => welford(vals).sqrt(),
        "stdvar_over_time" => welford(vals),
        _ => return None,
    })
}

fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Population variance, computed incrementally.
fn welford(vals: impl Iterator<Item = f64>) -> f64 {
    let (mut n, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for v in vals {
        n += 1.0;
        let delta = v - mean;
        mean += delta / n;
        m2 += delta * (v - mean);
    }
    if n == 0.0 { f64::NAN } else { m2 / n }
}

/// `rate`, `increase` and `delta`: the change over the samples in the
/// window, extrapolated towards the window's edges, but by no more than
/// 1.1 average sample intervals (further than that, the series probably
/// started or stopped inside the window: extrapolate half an interval) and,
/// for counters, not below zero.
fn extrapolated_rate(
    p: &[(Millis, f64)],
    start: Millis,
    end: Millis,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (first, last) = (p[0], p[p.len() - 1]);
    let mut result = last.1 - first.1;
    if is_counter {
        let mut prev = 0.0;
        for &(_, v) in p {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut to_start = (first.0 - start) as f64 / 1000.0;
    let to_end = (end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg_interval = sampled / (p.len() - 1) as f64;
    if is_counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg_interval * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg_interval / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg_interval / 2.0
    };
    result *= interval / sampled;
    if is_rate {
        result /= (end - start) as f64 / 1000.0;
    }
    Some(result)
}

/// `irate` and `idelta`: from the last two samples only.
fn instant_delta(p: &[(Millis, f64)], is_rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (prev, last) = (p[p.len() - 2], p[p.len() - 1]);
    let mut v = if is_rate && last.1 < prev.1 {
        // Counter reset: the counter went from 0 to `last`.
        last.1
    } else {
        last.1 - prev.1
    };
    let dt = (last.0 - prev.0) as f64 / 1000.0;
    if dt == 0.0 {
        return None;
    }
    if is_rate {
        v /= dt;
    }
    Some(v)
}

/// Least-squares fit of value against seconds relative to `intercept_at`:
/// (slope per second, value at `intercept_at`).
pub(super) fn linear_regression(p: &[(Millis, f64)], intercept_at: Millis) -> (f64, f64) {
    let init = p[0].1;
    let const_y = p.iter().all(|s| s.1 == init);
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let n = p.len() as f64;
    let (mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    for &(ts, v) in p {
        let x = (ts - intercept_at) as f64 / 1000.0;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    let intercept = sy / n - slope * sx / n;
    (slope, intercept)
}

/// Classic-bucket `histogram_quantile`, grouped by every label but `le`.
fn histogram_quantile(q: f64, v: Vec<Sample>) -> Vec<Sample> {
    // Keys borrow the input's labels; a label set is built per group only.
    type Key<'a> = Vec<(&'a str, &'a str)>;
    let mut index: HashMap<Key, usize, foldhash::fast::RandomState> = HashMap::default();
    let mut groups: Vec<(Key, Vec<(f64, f64)>)> = Vec::new();
    for s in &v {
        let Some(le) = s.labels.get("le").and_then(parse_le) else {
            continue;
        };
        let key: Vec<(&str, &str)> = s
            .labels
            .iter()
            .filter(|(k, _)| *k != METRIC_NAME && *k != "le")
            .collect();
        match index.get(&key) {
            Some(&i) => groups[i].1.push((le, s.value)),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![(le, s.value)]));
            }
        }
    }
    groups
        .into_iter()
        .map(|(key, buckets)| Sample {
            labels: key.into_iter().collect(),
            value: bucket_quantile(q, buckets),
        })
        .collect()
}

fn parse_le(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

/// Buckets are (upper bound, cumulative count).
pub(super) fn bucket_quantile(q: f64, mut b: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    if b.last().is_none_or(|l| l.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Buckets with the same bound (from series differing only in a label
    // that was aggregated away) add up.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for (ub, c) in b {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    let mut b = merged;
    // Counts must not decrease with the bound; scrapes that are not atomic
    // break that, so carry the running maximum forward.
    let mut max = f64::NEG_INFINITY;
    for x in &mut b {
        if x.1 > max {
            max = x.1;
        } else if x.1 < max {
            x.1 = max;
        }
    }
    if b.len() < 2 {
        return f64::NAN;
    }
    let total = b[b.len() - 1].1;
    if total == 0.0 || total.is_nan() {
        return f64::NAN;
    }
    let mut rank = q * total;
    let n = b.len() - 1;
    let idx = b[..n].partition_point(|x| x.1 < rank);
    if idx == n {
        return b[n - 1].0;
    }
    if idx == 0 && b[0].0 <= 0.0 {
        return b[0].0;
    }
    let end = b[idx].0;
    let mut count = b[idx].1;
    let mut start = 0.0;
    if idx > 0 {
        start = b[idx - 1].0;
        count -= b[idx - 1].1;
        rank -= b[idx - 1].1;
    }
    start + (end - start) * (rank / count)
}

// ---- aggregations ----

fn group_labels(labels: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::new(),
        Some(LabelModifier::Include(by)) => labels
            .iter()
            .filter(|(k, _)| by.labels.iter().any(|l| l == k))
            .collect(),
        Some(LabelModifier::Exclude(without)) => labels
            .iter()
            .filter(|(k, _)| *k != METRIC_NAME && !without.labels.iter().any(|l| l == k))
            .collect(),
    }
}

fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

pub(super) fn aggregate(
    op: &str,
    input: Vec<Sample>,
    param: Option<Value>,
    modifier: &Option<LabelModifier>,
) -> Result<Value, EvalError> {
    let scalar_param = |what: &str| -> Result<f64, EvalError> {
        match &param {
            Some(Value::Scalar(v)) => Ok(*v),
            _ => Err(EvalError::Type(format!("{op}() needs a scalar {what}"))),
        }
    };
    // Groups in first-seen order, so output order is stable.
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<Sample>)> = Vec::new();
    let count_label = if op == "count_values" {
        match &param {
            Some(Value::String(s)) if is_valid_label_name(s) => Some(s.clone()),
            Some(Value::String(s)) => {
                return Err(EvalError::Invalid(format!(
                    "invalid label name {s:?} in count_values()"
                )));
            }
            _ => {
                return Err(EvalError::Type(
                    "count_values() needs a string label name".to_owned(),
                ));
            }
        }
    } else {
        None
    };
    for s in input {
        let mut key = group_labels(&s.labels, modifier);
        if let Some(l) = &count_label {
            key.set(l.clone(), format_go_float(s.value));
        }
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(s);
    }
    let mut out = Vec::new();
    match op {
        "topk" | "bottomk" => {
            let k = scalar_param("k")?;
            if k.is_nan() {
                return Err(EvalError::Invalid(format!("parameter of {op}() is NaN")));
            }
            if k < 1.0 {
                return Ok(Value::Vector(Vec::new()));
            }
            let k = k.min(1e9) as usize;
            for (_, mut members) in groups {
                let top = op == "topk";
                // NaN sorts last in both directions.
                members.sort_by(|a, b| match (a.value.is_nan(), b.value.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if top => b.value.total_cmp(&a.value),
                    _ => a.value.total_cmp(&b.value),
                });
                members.truncate(k);
                out.extend(members);
            }
            return Ok(Value::Vector(out));
        }
        "quantile" => {
            let q = scalar_param("quantile")?;
            for (labels, members) in groups {
                out.push(Sample {
                    labels,
                    value: quantile(q, members.iter().map(|s| s.value).collect()),
                });
            }
            return Ok(Value::Vector(out));
        }
        _ => {}
    }
    for (labels, members) in groups {
        let vals: Vec<f64> = members.iter().map(|s| s.value).collect();
        let value = simple_aggregate(op, &vals)
            .ok_or_else(|| EvalError::Unsupported(format!("aggregation {op}")))?;
        out.push(Sample { labels, value });
    }
    Ok(Value::Vector(out))
}

/// The aggregations whose result for a group is a function of its
/// members' values alone (all but `topk`, `bottomk`, `count_values` and
/// `quantile`, which take more).
pub(super) fn is_simple_aggregate(op: &str) -> bool {
    matches!(
        op,
        "sum" | "avg" | "count" | "group" | "min" | "max" | "stddev" | "stdvar"
    )
}

/// One group's value, in the members' order; `None` for an aggregation
/// that [`is_simple_aggregate`] does not accept.
pub(super) fn simple_aggregate(op: &str, vals: &[f64]) -> Option<f64> {
    let it = vals.iter().copied();
    Some(match op {
        "sum" => it.fold(0.0, |a, b| a + b),
        "avg" => {
            let mut mean: f64 = 0.0;
            let mut n = 0.0;
            for v in it {
                n += 1.0;
                if mean.is_infinite() {
                    if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                        continue;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        continue;
                    }
                }
                mean += v / n - mean / n;
            }
            mean
        }
        "count" | "count_values" => vals.len() as f64,
        "group" => 1.0,
        "min" => it.fold(f64::NAN, |m, v| if v < m || m.is_nan() { v } else { m }),
        "max" => it.fold(f64::NAN, |m, v| if v > m || m.is_nan() { v } else { m }),
        "stddev" => welford(it).sqrt(),
        "stdvar" => welford(it),
        _ => return None,
    })
}
