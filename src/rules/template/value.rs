//! The values a template computes with, standing for the Go types
//! Prometheus hands its templates (`float64`, `map[string]string`, its
//! query result types, ...), with Go's notion of truth and Go's type
//! names, which show in `printf "%T"` and in error text.

use std::collections::BTreeMap;
use std::rc::Rc;

/// One value. Maps are shared, not copied, as a template passes them
/// around.
#[derive(Clone, Debug)]
pub(super) enum Val {
    /// Go's nil interface: a missing key of an `args` map, `nil`.
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// `map[string]string`: a label set.
    Labels(Rc<BTreeMap<String, String>>),
    /// `map[string]interface{}`: what `args` returns.
    Args(Rc<BTreeMap<String, Val>>),
    /// `*template.sample`: one element of a query result.
    Sample(Rc<QSample>),
    /// `template.queryResult`: what `query` returns.
    Vector(Rc<Vec<Rc<QSample>>>),
    /// The data the template runs on (`.` at the top, `$`).
    Root(Rc<RootData>),
    /// `*time.Time` from `toTime`, in Unix milliseconds as Prometheus's
    /// `model.Time` keeps it.
    Time(i64),
}

#[derive(Debug)]
pub(super) struct QSample {
    pub labels: Rc<BTreeMap<String, String>>,
    pub value: f64,
}

/// Prometheus's alert template data, in its field order (which `{{ . }}`
/// shows).
#[derive(Debug)]
pub(super) struct RootData {
    pub labels: Rc<BTreeMap<String, String>>,
    pub external_labels: Rc<BTreeMap<String, String>>,
    pub external_url: String,
    pub value: f64,
}

pub(super) const ROOT_FIELDS: [&str; 4] = ["Labels", "ExternalLabels", "ExternalURL", "Value"];

pub(super) const ROOT_TYPE: &str = "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }";

impl Val {
    /// Go's truth: false, 0, nil and empty strings, maps and slices are
    /// false; pointers and structs are true.
    pub fn truthy(&self) -> bool {
        match self {
            Val::Nil => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::Labels(m) => !m.is_empty(),
            Val::Args(m) => !m.is_empty(),
            Val::Vector(v) => !v.is_empty(),
            Val::Sample(_) | Val::Root(_) | Val::Time(_) => true,
        }
    }

    /// The Go type's name, as `%T` writes it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Nil => "<nil>",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::Labels(_) => "map[string]string",
            Val::Args(_) => "map[string]interface {}",
            Val::Sample(_) => "*template.sample",
            Val::Vector(_) => "template.queryResult",
            Val::Root(_) => ROOT_TYPE,
            Val::Time(_) => "*time.Time",
        }
    }

    /// `.name` on this value: a struct's field or a map's key (a missing
    /// key is the element type's zero value, as with `missingkey=zero`).
    pub fn field(&self, name: &str) -> Result<Val, String> {
        let no_field = || format!("can't evaluate field {name} in type {}", self.type_name());
        Ok(match self {
            Val::Root(r) => match name {
                "Labels" => Val::Labels(r.labels.clone()),
                "ExternalLabels" => Val::Labels(r.external_labels.clone()),
                "ExternalURL" => Val::Str(r.external_url.clone()),
                "Value" => Val::Float(r.value),
                _ => return Err(no_field()),
            },
            Val::Sample(s) => match name {
                "Labels" => Val::Labels(s.labels.clone()),
                "Value" => Val::Float(s.value),
                _ => return Err(no_field()),
            },
            Val::Labels(m) => Val::Str(m.get(name).cloned().unwrap_or_default()),
            Val::Args(m) => m.get(name).cloned().unwrap_or(Val::Nil),
            Val::Nil => return Err(format!("nil pointer evaluating interface {{}}.{name}")),
            Val::Time(_) => return Err(format!("{TIME_METHODS}; .{name} is one")),
            _ => return Err(no_field()),
        })
    }
}

/// Why `.Format`, `.Unix` and the other methods of the time `toTime`
/// returns fail here.
pub(super) const TIME_METHODS: &str =
    "the methods of the time toTime returns are not supported (use humanizeTimestamp)";

impl QSample {
    pub fn from_sample(s: &crate::promql::Sample) -> Rc<QSample> {
        Rc::new(QSample {
            labels: Rc::new(s.labels.to_map()),
            value: s.value,
        })
    }
}
