//! Prometheus alert templates: Go's `text/template` as Prometheus 2.42
//! runs it for alert labels and annotations, parsed once when the rule
//! file loads.
//!
//! Owns the whole language of those templates: actions and pipelines,
//! `{{- -}}` trim markers and comments, `if`/`else if`/`else`, `with`
//! (rebinding dot), `range` over query results and label maps (maps in
//! sorted key order) with `else`, `break` and `continue`, variables
//! (`$x := ...`, `$x = ...`, `$`, and the `$labels`, `$value`,
//! `$externalLabels`, `$externalURL` Prometheus declares), `define`,
//! `template` and `block`; Go's builtin functions and the ones Prometheus
//! adds, `query` among them; and Go's value printing and `fmt`, so output
//! matches Prometheus byte for byte. Missing labels render as the empty
//! string (Prometheus runs templates with `missingkey=zero`).
//!
//! - [`parse`](mod@parse): lexer and parser, with Go's parse-time checks.
//! - [`exec`]: running a parsed template.
//! - [`funcs`]: the functions.
//! - [`value`]: the values templates compute with.
//! - [`gofmt`]: Go's `fmt` and number formatting.
//!
//! What is left out is refused where Prometheus would have refused or
//! failed as well, or named in a load-time error: methods of the time
//! `toTime` returns, and complex numbers. The README lists the known
//! differences.

mod exec;
mod funcs;
mod gofmt;
mod parse;
mod value;

#[cfg(test)]
mod tests;

pub use funcs::FUNCTIONS;

use crate::labels::Labels;
use crate::promql::Sample;

/// A template that failed to parse or render. `line` and `col` are 1-based
/// inside the template text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct TemplateError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Answers a template's `query "expr"`: an instant query at the time the
/// rule is evaluated, as a vector (a scalar comes back as one sample
/// without labels).
pub type QueryFn<'a> = dyn Fn(&str) -> Result<Vec<Sample>, String> + 'a;

/// What a template can see.
#[derive(Clone, Copy)]
pub struct TemplateData<'a> {
    pub labels: &'a Labels,
    pub value: f64,
    pub external_labels: &'a Labels,
    /// `$externalURL`, `.ExternalURL` and the `externalURL` and
    /// `pathPrefix` functions.
    pub external_url: &'a str,
    /// Where `query` is answered; without it, `query` fails.
    pub query: Option<&'a QueryFn<'a>>,
}

impl std::fmt::Debug for TemplateData<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateData")
            .field("labels", self.labels)
            .field("value", &self.value)
            .field("external_labels", self.external_labels)
            .field("external_url", &self.external_url)
            .field("query", &self.query.is_some())
            .finish()
    }
}

/// A parsed template.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
    root: Vec<parse::Node>,
    defines: Vec<(String, Vec<parse::Node>)>,
}

impl Template {
    /// Parses a template; unknown functions and variables are errors here,
    /// not at render time.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let parsed = parse::parse(source)?;
        Ok(Template {
            source: source.to_owned(),
            root: parsed.root,
            defines: parsed.defines,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Where the template first calls function `name` (1-based line and
    /// column), if it does: for checks that depend on where the rules run.
    pub fn calls(&self, name: &str) -> Option<(usize, usize)> {
        parse::first_call(&self.root, &self.defines, name).map(|at| {
            let e = parse::error_at(&self.source, at, "");
            (e.line, e.col)
        })
    }

    /// Renders with the given data.
    pub fn render(&self, data: &TemplateData<'_>) -> Result<String, TemplateError> {
        let ex = exec::Exec::new(&self.source, &self.defines, data);
        let root = ex.root();
        ex.run(&self.root, &root)
    }

    /// Renders, or returns Prometheus's inline error text on failure, as an
    /// alert's annotation shows it.
    pub fn render_or_error(&self, data: &TemplateData<'_>) -> String {
        self.render(data)
            .unwrap_or_else(|e| format!("<error expanding template: {e}>"))
    }
}
