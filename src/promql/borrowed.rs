//! The evaluator's fast path for the shapes alerting rules are made of:
//! a selector of one metric, or a per-series range function over one, read
//! straight from the store and consumed by an aggregation or a comparison
//! with a number. The general path gives every element its own label set
//! (two clones of a series' labels per element, before a group key or a
//! comparison throws most of them away); here elements borrow the store's
//! labels and label sets are built only for what the expression returns.
//!
//! Results are the general path's, element for element and in the same
//! order: a shape is taken only when that is guaranteed, and otherwise
//! `None` sends the caller down the general path.

use std::collections::HashMap;

use promql_parser::parser::{AggregateExpr, BinaryExpr, Call, Expr, LabelModifier};

use super::eval::{Evaluator, drops_name, is_set, scalar_op, unparen};
use super::functions::{
    is_simple_aggregate, is_simple_range_fn, quantile, range_value, simple_aggregate,
};
use super::{EvalError, LOOKBACK_MS, Sample, Value};
use crate::duration::Millis;
use crate::labels::{Labels, METRIC_NAME};
use crate::matchers::{MatchOp, Matcher};
use crate::tsdb::is_stale;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A group's label pairs, borrowed from its first member.
type GroupKey<'a> = Vec<(&'a str, &'a str)>;

/// An instant-vector element whose labels are a stored series' labels,
/// without `__name__` when `drop_name`.
pub(super) struct Borrowed<'a> {
    labels: &'a Labels,
    drop_name: bool,
    value: f64,
}

impl Borrowed<'_> {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        let drop = self.drop_name;
        self.labels
            .iter()
            .filter(move |(k, _)| !(drop && *k == METRIC_NAME))
    }

    fn to_labels(&self, drop_name: bool) -> Labels {
        if drop_name || self.drop_name {
            self.labels
                .iter()
                .filter(|(k, _)| *k != METRIC_NAME)
                .collect()
        } else {
            self.labels.clone()
        }
    }
}

/// Whether every series the matchers select has one and the same metric
/// name. Dropping `__name__` then cannot make two elements' label sets
/// equal, so the general path's duplicate check could never fail.
fn one_metric(matchers: &[Matcher]) -> bool {
    matchers
        .iter()
        .any(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal)
}

fn number(e: &Expr) -> Option<f64> {
    match unparen(e) {
        Expr::NumberLiteral(n) => Some(n.val),
        Expr::Unary(u) => number(&u.expr).map(|v| -v),
        _ => None,
    }
}

impl<'a> Evaluator<'a> {
    /// `e`'s elements borrowed from the store, when `e` is a shape the
    /// fast path covers.
    pub(super) fn borrowed(
        &self,
        e: &Expr,
        t: Millis,
    ) -> Option<Result<Vec<Borrowed<'a>>, EvalError>> {
        match unparen(e) {
            Expr::VectorSelector(vs) => {
                let matchers = match Self::matchers(vs) {
                    Ok(m) => m,
                    Err(e) => return Some(Err(e)),
                };
                if !one_metric(&matchers) {
                    return None;
                }
                let r = self.ref_time(&vs.at, &vs.offset, t);
                let store: &'a _ = self.store;
                let out = store
                    .select(&matchers)
                    .filter_map(|s| match s.latest(r - LOOKBACK_MS - 1, r) {
                        Some((_, v)) if !is_stale(v) => Some(Borrowed {
                            labels: s.labels,
                            drop_name: false,
                            value: v,
                        }),
                        _ => None,
                    })
                    .collect();
                Some(Ok(out))
            }
            Expr::Call(c) => self.borrowed_range_fn(c, t),
            _ => None,
        }
    }

    fn borrowed_range_fn(
        &self,
        c: &Call,
        t: Millis,
    ) -> Option<Result<Vec<Borrowed<'a>>, EvalError>> {
        let name = c.func.name;
        if !is_simple_range_fn(name) || c.args.args.len() != 1 {
            return None;
        }
        let Expr::MatrixSelector(ms) = unparen(&c.args.args[0]) else {
            return None;
        };
        let matchers = match Self::matchers(&ms.vs) {
            Ok(m) => m,
            Err(e) => return Some(Err(e)),
        };
        if !one_metric(&matchers) {
            return None;
        }
        let end = self.ref_time(&ms.vs.at, &ms.vs.offset, t);
        let start = end - super::eval::dur_ms(&ms.range);
        let drop_name = name != "last_over_time";
        let store: &'a _ = self.store;
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        for s in store.select(&matchers) {
            // `start - 1`: the store's range is left-open, 2.42's closed.
            let mut p = s.range(start - 1, end);
            if p.iter().any(|(_, v)| is_stale(*v)) {
                scratch.clear();
                scratch.extend(p.iter().copied().filter(|(_, v)| !is_stale(*v)));
                p = &scratch;
            }
            if p.is_empty() {
                continue;
            }
            if let Some(value) = range_value(name, p, start, end) {
                out.push(Borrowed {
                    labels: s.labels,
                    drop_name,
                    value,
                });
            }
        }
        Some(Ok(out))
    }

    /// A range function call, with one label set built per element
    /// instead of two.
    pub(super) fn fast_call(&self, c: &Call, t: Millis) -> Option<Result<Value, EvalError>> {
        let v = match self.borrowed_range_fn(c, t)? {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(Value::Vector(
            v.iter()
                .map(|b| Sample {
                    labels: b.to_labels(false),
                    value: b.value,
                })
                .collect(),
        )))
    }

    /// An aggregation whose groups' values depend on their members' values
    /// alone, over a borrowed input: one label set per group.
    pub(super) fn fast_aggregate(
        &self,
        a: &AggregateExpr,
        t: Millis,
    ) -> Option<Result<Value, EvalError>> {
        let op = a.op.to_string();
        if !is_simple_aggregate(&op) && op != "quantile" {
            return None;
        }
        let input = match self.borrowed(&a.expr, t)? {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        let q = match &a.param {
            Some(p) => match self.eval(p, t) {
                Ok(Value::Scalar(v)) => Some(v),
                Ok(_) => {
                    return Some(Err(EvalError::Type(format!(
                        "{op}() needs a scalar quantile"
                    ))));
                }
                Err(e) => return Some(Err(e)),
            },
            None => None,
        };
        if op == "quantile" && q.is_none() {
            return None;
        }
        // Groups in first-seen order, as the general path.
        let mut index: FastMap<GroupKey, usize> = FastMap::default();
        let mut groups: Vec<(GroupKey, Vec<f64>)> = Vec::new();
        for b in &input {
            let key: GroupKey = match &a.modifier {
                None => Vec::new(),
                Some(LabelModifier::Include(by)) => b
                    .pairs()
                    .filter(|(k, _)| by.labels.iter().any(|l| l == k))
                    .collect(),
                Some(LabelModifier::Exclude(without)) => b
                    .pairs()
                    .filter(|(k, _)| *k != METRIC_NAME && !without.labels.iter().any(|l| l == k))
                    .collect(),
            };
            match index.get(&key) {
                Some(&i) => groups[i].1.push(b.value),
                None => {
                    index.insert(key.clone(), groups.len());
                    groups.push((key, vec![b.value]));
                }
            }
        }
        let mut out = Vec::with_capacity(groups.len());
        for (key, vals) in groups {
            let value = match q {
                Some(q) => quantile(q, vals),
                None => simple_aggregate(&op, &vals)?,
            };
            out.push(Sample {
                labels: key.into_iter().collect(),
                value,
            });
        }
        Some(Ok(Value::Vector(out)))
    }

    /// A borrowed vector and a number: label sets only for the elements a
    /// comparison keeps.
    pub(super) fn fast_binary(
        &self,
        b: &BinaryExpr,
        t: Millis,
    ) -> Option<Result<Value, EvalError>> {
        let op = b.op.to_string();
        if is_set(&op) {
            return None;
        }
        let (vec_side, s, scalar_on_left) = match (number(&b.lhs), number(&b.rhs)) {
            (None, Some(s)) => (&b.lhs, s, false),
            (Some(s), None) => (&b.rhs, s, true),
            _ => return None,
        };
        let v = match self.borrowed(vec_side, t)? {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        let return_bool = b.return_bool();
        let comparison = super::eval::is_comparison(&op);
        let drop = drops_name(&op) || return_bool;
        let mut out = Vec::new();
        for e in &v {
            let (l, r) = if scalar_on_left {
                (s, e.value)
            } else {
                (e.value, s)
            };
            let (mut value, keep) = match scalar_op(&op, l, r) {
                Ok(x) => x,
                Err(err) => return Some(Err(err)),
            };
            if comparison && scalar_on_left {
                value = r;
            }
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            out.push(Sample {
                labels: e.to_labels(drop),
                value,
            });
        }
        Some(Ok(Value::Vector(out)))
    }
}
