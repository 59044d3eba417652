//! Running a parsed template, as Go's text/template executes one: dot
//! rebinding in `with` and `range`, the variable stack (declarations
//! scoped to their control structure, `=` assigning the innermost
//! variable of that name, each `range` iteration starting afresh), maps
//! ranged over in sorted key order, `and`/`or` evaluating only what they
//! need, and `template` running a defined template with its own `$`.

use std::rc::Rc;

use super::parse::{Arg, Cmd, Control, Node, Pipe};
use super::value::{RootData, Val};
use super::{TemplateData, TemplateError, funcs, gofmt};

/// How deep blocks may nest as the template runs, `{{template}}` calls
/// included: the executor recurses once per level. Go allows far more,
/// but a template that recurses this deep is looping.
const MAX_DEPTH: usize = 2 * super::parse::MAX_NESTING;

enum Flow {
    Normal,
    Break,
    Continue,
}

pub(super) struct Exec<'a> {
    src: &'a str,
    defines: &'a [(String, Vec<Node>)],
    data: &'a TemplateData<'a>,
    /// Variables in scope, innermost last.
    vars: Vec<(String, Val)>,
    /// Blocks open, `{{template}}` calls included.
    depth: usize,
    out: String,
}

impl<'a> Exec<'a> {
    pub fn new(
        src: &'a str,
        defines: &'a [(String, Vec<Node>)],
        data: &'a TemplateData<'a>,
    ) -> Self {
        let labels = Rc::new(data.labels.to_map());
        let external_labels = Rc::new(data.external_labels.to_map());
        let root = Val::Root(Rc::new(RootData {
            labels: labels.clone(),
            external_labels: external_labels.clone(),
            external_url: data.external_url.to_owned(),
            value: data.value,
        }));
        // Prometheus declares these before every alert template.
        let vars = vec![
            ("$".to_owned(), root),
            ("$labels".to_owned(), Val::Labels(labels)),
            ("$externalLabels".to_owned(), Val::Labels(external_labels)),
            (
                "$externalURL".to_owned(),
                Val::Str(data.external_url.to_owned()),
            ),
            ("$value".to_owned(), Val::Float(data.value)),
        ];
        Exec {
            src,
            defines,
            data,
            vars,
            depth: 0,
            out: String::new(),
        }
    }

    pub fn root(&self) -> Val {
        self.vars[0].1.clone()
    }

    fn err(&self, at: usize, m: impl Into<String>) -> TemplateError {
        super::parse::error_at(self.src, at, m)
    }

    /// Runs `nodes` with `dot`, and returns what they wrote.
    pub fn run(mut self, nodes: &[Node], dot: &Val) -> Result<String, TemplateError> {
        self.walk(nodes, dot)?;
        Ok(self.out)
    }

    fn walk(&mut self, nodes: &[Node], dot: &Val) -> Result<Flow, TemplateError> {
        self.depth += 1;
        let flow = self.walk_nodes(nodes, dot);
        self.depth -= 1;
        flow
    }

    fn walk_nodes(&mut self, nodes: &[Node], dot: &Val) -> Result<Flow, TemplateError> {
        for n in nodes {
            let flow = match n {
                Node::Text(t) => {
                    self.out.push_str(t);
                    Flow::Normal
                }
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&gofmt::action_text(&v));
                    }
                    Flow::Normal
                }
                Node::If(c) => self.if_or_with(c, dot, false)?,
                Node::With(c) => self.if_or_with(c, dot, true)?,
                Node::Range(c) => self.range(c, dot)?,
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
                Node::Template { name, pipe, at } => {
                    self.template(name, pipe.as_ref(), *at, dot)?;
                    Flow::Normal
                }
            };
            if !matches!(flow, Flow::Normal) {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn if_or_with(&mut self, c: &Control, dot: &Val, with: bool) -> Result<Flow, TemplateError> {
        let mark = self.vars.len();
        let v = self.pipe(&c.pipe, dot)?;
        let flow = if v.truthy() {
            let inner = if with { v } else { dot.clone() };
            self.walk(&c.body, &inner)
        } else {
            self.walk(&c.otherwise, dot)
        };
        self.vars.truncate(mark);
        flow
    }

    fn range(&mut self, c: &Control, dot: &Val) -> Result<Flow, TemplateError> {
        let mark = self.vars.len();
        let v = self.pipe(&c.pipe, dot)?;
        let items: Vec<(Val, Val)> = match &v {
            Val::Vector(s) => s
                .iter()
                .enumerate()
                .map(|(i, x)| (Val::Int(i as i64), Val::Sample(x.clone())))
                .collect(),
            Val::Labels(m) => m
                .iter()
                .map(|(k, x)| (Val::Str(k.clone()), Val::Str(x.clone())))
                .collect(),
            Val::Args(m) => m
                .iter()
                .map(|(k, x)| (Val::Str(k.clone()), x.clone()))
                .collect(),
            Val::Nil => Vec::new(),
            other => {
                return Err(self.err(
                    c.pipe.at,
                    format!("range can't iterate over {}", gofmt::action_text(other)),
                ));
            }
        };
        let top = self.vars.len();
        for (key, elem) in &items {
            let n = c.pipe.decl.len();
            if c.pipe.assign {
                // With two variables the key comes first; with one, the
                // element.
                match n {
                    1 => self.set_var(&c.pipe.decl[0], elem.clone(), c.pipe.at)?,
                    2 => {
                        self.set_var(&c.pipe.decl[0], key.clone(), c.pipe.at)?;
                        self.set_var(&c.pipe.decl[1], elem.clone(), c.pipe.at)?;
                    }
                    _ => {}
                }
            } else if n > 0 {
                self.vars[top - 1].1 = elem.clone();
                if n > 1 {
                    self.vars[top - 2].1 = key.clone();
                }
            }
            let step = self.walk(&c.body, elem);
            self.vars.truncate(top);
            match step? {
                Flow::Break => break,
                Flow::Continue | Flow::Normal => {}
            }
        }
        let flow = if items.is_empty() {
            self.walk(&c.otherwise, dot)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn template(
        &mut self,
        name: &str,
        pipe: Option<&Pipe>,
        at: usize,
        dot: &Val,
    ) -> Result<(), TemplateError> {
        let Some((_, body)) = self.defines.iter().rev().find(|(n, _)| n == name) else {
            return Err(self.err(at, format!("template {name:?} not defined")));
        };
        if self.depth >= MAX_DEPTH {
            return Err(self.err(at, format!("exceeded maximum template depth ({MAX_DEPTH})")));
        }
        let new_dot = match pipe {
            Some(p) => self.pipe(p, dot)?,
            None => Val::Nil,
        };
        let vars = std::mem::replace(&mut self.vars, vec![("$".to_owned(), new_dot.clone())]);
        let r = self.walk(body, &new_dot);
        self.vars = vars;
        r.map(|_| ())
    }

    fn set_var(&mut self, name: &str, v: Val, at: usize) -> Result<(), TemplateError> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => Err(self.err(at, format!("undefined variable: {name}"))),
        }
    }

    fn var(&self, name: &str, at: usize) -> Result<Val, TemplateError> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.err(at, format!("undefined variable: {name}")))
    }

    fn pipe(&mut self, p: &Pipe, dot: &Val) -> Result<Val, TemplateError> {
        let mut v: Option<Val> = None;
        for c in &p.cmds {
            v = Some(self.command(c, dot, v)?);
        }
        let v = v.unwrap_or(Val::Nil);
        for name in &p.decl {
            if p.assign {
                self.set_var(name, v.clone(), p.at)?;
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(&mut self, c: &Cmd, dot: &Val, piped: Option<Val>) -> Result<Val, TemplateError> {
        match &c.args[0] {
            Arg::Func(name) => self.call(name, &c.args[1..], piped, c.at, dot),
            // The parser lets only functions take arguments.
            first => self.arg(first, c.at, dot),
        }
    }

    fn call(
        &mut self,
        name: &str,
        args: &[Arg],
        piped: Option<Val>,
        at: usize,
        dot: &Val,
    ) -> Result<Val, TemplateError> {
        let fail = |e: &Self, m: String| e.err(at, format!("error calling {name}: {m}"));
        let count = args.len() + usize::from(piped.is_some());
        if name == "and" || name == "or" {
            if count == 0 {
                return Err(fail(
                    self,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            // Only as many arguments as decide the answer are evaluated.
            let mut last = Val::Nil;
            for a in args {
                last = self.arg(a, at, dot)?;
                if last.truthy() == (name == "or") {
                    return Ok(last);
                }
            }
            return Ok(piped.unwrap_or(last));
        }
        let mut vals = Vec::with_capacity(count);
        for a in args {
            vals.push(self.arg(a, at, dot)?);
        }
        vals.extend(piped);
        let env = funcs::Env {
            query: self.data.query,
            external_url: self.data.external_url,
        };
        funcs::call(name, vals, &env).map_err(|m| fail(self, m))
    }

    fn arg(&mut self, a: &Arg, at: usize, dot: &Val) -> Result<Val, TemplateError> {
        let fields = |e: &Self, mut v: Val, names: &[String]| -> Result<Val, TemplateError> {
            for f in names {
                v = v.field(f).map_err(|m| e.err(at, m))?;
            }
            Ok(v)
        };
        Ok(match a {
            Arg::Func(name) => self.call(name, &[], None, at, dot)?,
            Arg::Dot => dot.clone(),
            Arg::Field(names) => fields(self, dot.clone(), names)?,
            Arg::Var(name, names) => {
                let v = self.var(name, at)?;
                fields(self, v, names)?
            }
            Arg::Sub(p) => self.pipe(p, dot)?,
            Arg::Chain(inner, names) => {
                let v = self.arg(inner, at, dot)?;
                fields(self, v, names)?
            }
            Arg::Str(s) => Val::Str(s.clone()),
            Arg::Int(i) => Val::Int(*i),
            Arg::Float(f) => Val::Float(*f),
            Arg::Bool(b) => Val::Bool(*b),
            Arg::Nil => Val::Nil,
        })
    }
}
