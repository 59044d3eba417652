//! Runbooks that call runbooks (`action: runbook`): the checks that need
//! every runbook at once, and linking each caller to what it calls.
//!
//! A call must name a loaded runbook, pass only that runbook's inputs and
//! every input it has no default for, and calls may not form a cycle. A
//! caller's digest covers what it calls, so a run is not resumed after a
//! restart when a runbook it calls has changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value as Json;

use super::template::is_template;
use super::{Runbook, Step, coerce};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean, one_of};
use crate::labels::fnv;

/// One `runbook` step, where it is written.
struct Call<'a> {
    step: &'a Step,
    field: String,
    callee: String,
    inputs: serde_json::Map<String, Json>,
}

fn calls_in(rb: &Runbook) -> Vec<Call<'_>> {
    let mut all: Vec<(&Step, String)> = Vec::new();
    for (i, s) in rb.steps.iter().enumerate() {
        all.push((s, format!("steps[{i}]")));
        if let Some(r) = &s.rollback {
            all.push((r, format!("steps[{i}].rollback")));
        }
    }
    if let Some(v) = &rb.verify {
        for (i, s) in v.steps.iter().enumerate() {
            all.push((s, format!("verify.steps[{i}]")));
        }
    }
    all.into_iter()
        .filter_map(|(step, field)| {
            step.spec.callee(&step.with).map(|p| Call {
                step,
                field,
                callee: p.runbook,
                inputs: p.inputs,
            })
        })
        .collect()
}

/// The inputs a called runbook runs with: those passed (rendered), as its
/// types, and its defaults for the rest.
pub fn call_inputs(
    rb: &Runbook,
    mut given: serde_json::Map<String, Json>,
) -> Result<BTreeMap<String, Json>, String> {
    let mut out = BTreeMap::new();
    for input in &rb.inputs {
        let v = match given.remove(&input.name) {
            Some(v) => coerce(input.ty, v).map_err(|e| format!("input `{}`: {e}", input.name))?,
            None => input.default.clone().ok_or_else(|| {
                format!("input `{}` was not passed and has no default", input.name)
            })?,
        };
        out.insert(input.name.clone(), v);
    }
    if let Some(k) = given.keys().next() {
        return Err(format!("runbook {} has no input `{k}`", rb.name));
    }
    Ok(out)
}

/// Every problem with the calls between these runbooks.
pub fn check(runbooks: &[Runbook]) -> Diagnostics {
    let by_name: BTreeMap<&str, &Runbook> = runbooks.iter().map(|r| (r.name.as_str(), r)).collect();
    let names: Vec<&str> = by_name.keys().copied().collect();
    let mut errs = Diagnostics::new();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for rb in runbooks {
        for call in calls_in(rb) {
            let at =
                |field: String, msg: String| Diagnostic::new(&rb.file, call.step.pos, field, msg);
            let Some(target) = by_name.get(call.callee.as_str()) else {
                let hint = did_you_mean(&call.callee, &names)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                errs.push(at(
                    format!("{}.with.runbook", call.field),
                    format!(
                        "no runbook named {:?}{hint}; loaded runbooks: {}",
                        call.callee,
                        one_of(&names)
                    ),
                ));
                continue;
            };
            edges
                .entry(rb.name.as_str())
                .or_default()
                .insert(target.name.as_str());
            let known: Vec<&str> = target.inputs.iter().map(|i| i.name.as_str()).collect();
            for (k, v) in &call.inputs {
                let Some(input) = target.inputs.iter().find(|i| &i.name == k) else {
                    let hint = did_you_mean(k, &known)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    errs.push(at(
                        format!("{}.with.inputs.{k}", call.field),
                        format!(
                            "runbook {} has no input {k:?}{hint}; its inputs: {}",
                            target.name,
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                one_of(&known)
                            }
                        ),
                    ));
                    continue;
                };
                let templated = matches!(v, Json::String(s) if is_template(s));
                if !templated && let Err(e) = coerce(input.ty, v.clone()) {
                    errs.push(at(
                        format!("{}.with.inputs.{k}", call.field),
                        format!("input {k:?} of runbook {}: {e}", target.name),
                    ));
                }
            }
            for input in &target.inputs {
                if input.default.is_none() && !call.inputs.contains_key(&input.name) {
                    errs.push(at(
                        format!("{}.with.inputs", call.field),
                        format!(
                            "runbook {} needs input {:?}, which has no default; pass it in `inputs`",
                            target.name, input.name
                        ),
                    ));
                }
            }
        }
    }
    for cycle in cycles(&edges) {
        let first = by_name[cycle[0]];
        errs.push(Diagnostic::new(
            &first.file,
            None,
            "steps",
            format!(
                "runbooks call each other in a cycle: {}; a run would never end",
                cycle.join(" -> ")
            ),
        ));
    }
    errs
}

/// Links each runbook to the runbooks it calls. Only for runbooks that
/// passed [`check`] and have distinct names.
pub fn link(runbooks: Vec<Runbook>) -> Vec<Runbook> {
    let edges: BTreeMap<String, Vec<String>> = runbooks
        .iter()
        .map(|rb| {
            let mut to: Vec<String> = calls_in(rb).into_iter().map(|c| c.callee).collect();
            to.sort();
            to.dedup();
            (rb.name.clone(), to)
        })
        .collect();
    linked(runbooks, &edges)
}

/// Every call cycle once, each starting at its smallest name, like
/// `a -> b -> a`.
fn cycles<'a>(edges: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Vec<Vec<&'a str>> {
    fn walk<'a>(
        at: &'a str,
        start: &'a str,
        path: &mut Vec<&'a str>,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        out: &mut Vec<Vec<&'a str>>,
    ) {
        for &next in edges.get(at).into_iter().flatten() {
            if next == start {
                let mut c = path.clone();
                c.push(start);
                out.push(c);
            } else if next > start && !path.contains(&next) {
                path.push(next);
                walk(next, start, path, edges, out);
                path.pop();
            }
        }
    }
    let mut out = Vec::new();
    for &start in edges.keys() {
        walk(start, start, &mut vec![start], edges, &mut out);
    }
    out
}

/// Links callers to callees, callees first (there is no cycle), and folds
/// each callee's digest into its caller's.
fn linked(runbooks: Vec<Runbook>, edges: &BTreeMap<String, Vec<String>>) -> Vec<Runbook> {
    let order: Vec<String> = runbooks.iter().map(|r| r.name.clone()).collect();
    let mut pending: BTreeMap<String, Runbook> =
        runbooks.into_iter().map(|r| (r.name.clone(), r)).collect();
    let mut done: BTreeMap<String, Arc<Runbook>> = BTreeMap::new();
    while !pending.is_empty() {
        let ready: Vec<String> = pending
            .keys()
            .filter(|n| {
                edges
                    .get(*n)
                    .is_none_or(|cs| cs.iter().all(|c| done.contains_key(c)))
            })
            .cloned()
            .collect();
        assert!(!ready.is_empty(), "call graph checked for cycles");
        for name in ready {
            let mut rb = pending.remove(&name).expect("listed above");
            let mut digest = rb.digest.clone();
            for c in edges.get(&name).into_iter().flatten() {
                let callee = done[c].clone();
                digest.push_str(&callee.digest);
                rb.callees.insert(c.clone(), callee);
            }
            if !rb.callees.is_empty() {
                rb.digest = format!("{:016x}", fnv(digest.as_bytes()));
            }
            done.insert(name, Arc::new(rb));
        }
    }
    order
        .iter()
        .map(|n| {
            let rb = done.remove(n).expect("every runbook was linked");
            Arc::try_unwrap(rb).unwrap_or_else(|shared| (*shared).clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::load_runbooks;

    const CALLEE: &str = "kind: runbook\nname: cap-listeners\ntrigger: {manual: true}\ninputs:\n  room: {type: string}\n  headroom: {type: number, default: 0.95}\nsteps:\n  - {id: w, action: wait, with: {duration: 1s}}\n";

    fn caller(name: &str, with: &str) -> String {
        format!(
            "kind: runbook\nname: {name}\ntrigger: {{manual: true}}\nsteps:\n  - id: first\n    action: wait\n    with: {{duration: 1s}}\n  - id: call\n    action: runbook\n    with: {with}\n"
        )
    }

    fn load(files: &[(&str, &str)]) -> Result<Vec<Runbook>, Diagnostics> {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        load_runbooks(&files, &crate::load::check_env([]))
    }

    #[test]
    fn a_call_is_linked_and_the_callee_is_part_of_the_digest() {
        let text = caller(
            "move",
            "{runbook: cap-listeners, inputs: {room: \"{{ steps.first.waited }}\"}}",
        );
        let books = load(&[("move.yaml", &text), ("cap.yaml", CALLEE)]).unwrap();
        let mv = books.iter().find(|r| r.name == "move").unwrap();
        assert_eq!(mv.callees["cap-listeners"].name, "cap-listeners");
        let changed = CALLEE.replace("1s", "2s");
        let again = load(&[("move.yaml", &text), ("cap.yaml", &changed)]).unwrap();
        let mv2 = again.iter().find(|r| r.name == "move").unwrap();
        assert_ne!(mv.digest, mv2.digest, "a changed callee changes the caller");
        let cap = books.iter().find(|r| r.name == "cap-listeners").unwrap();
        assert!(cap.callees.is_empty());
    }

    #[test]
    fn bad_calls_are_located_with_what_would_be_valid() {
        let errs = load(&[
            ("a.yaml", &caller("a", "{runbook: cap-listner}")),
            (
                "b.yaml",
                &caller(
                    "b",
                    "{runbook: cap-listeners, inputs: {rom: main, headroom: lots}}",
                ),
            ),
            ("cap.yaml", CALLEE),
        ])
        .unwrap_err()
        .to_string();
        for want in [
            "a.yaml:8:5: steps[1].with.runbook: no runbook named \"cap-listner\" (did you mean `cap-listeners`?)",
            "b.yaml:8:5: steps[1].with.inputs.rom: runbook cap-listeners has no input \"rom\" (did you mean `room`?)",
            "b.yaml:8:5: steps[1].with.inputs.headroom: input \"headroom\" of runbook cap-listeners: \"lots\" is not a number",
            "b.yaml:8:5: steps[1].with.inputs: runbook cap-listeners needs input \"room\", which has no default",
        ] {
            assert!(errs.contains(want), "missing {want:?} in:\n{errs}");
        }
    }

    #[test]
    fn calls_may_not_form_a_cycle() {
        let errs = load(&[
            ("a.yaml", &caller("a", "{runbook: b}")),
            ("b.yaml", &caller("b", "{runbook: a}")),
            ("c.yaml", &caller("c", "{runbook: c}")),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            errs.contains("a.yaml: steps: runbooks call each other in a cycle: a -> b -> a"),
            "{errs}"
        );
        assert!(errs.contains("cycle: c -> c"), "{errs}");
        assert_eq!(errs.matches("cycle").count(), 2, "{errs}");
    }

    #[test]
    fn call_inputs_take_types_and_defaults() {
        let books = load(&[("cap.yaml", CALLEE)]).unwrap();
        let given = serde_json::json!({"room": "main"});
        let got = call_inputs(&books[0], given.as_object().unwrap().clone()).unwrap();
        assert_eq!(got["headroom"], serde_json::json!(0.95));
        let e = call_inputs(&books[0], Default::default()).unwrap_err();
        assert!(e.contains("`room` was not passed"), "{e}");
        let extra = serde_json::json!({"room": "main", "x": 1});
        let e = call_inputs(&books[0], extra.as_object().unwrap().clone()).unwrap_err();
        assert!(e.contains("no input `x`"), "{e}");
    }
}
