//! `run RUNBOOK [NAME=VALUE...] [--dry-run]`: start a runbook by hand.
//! The control loop decides (manual runbooks only, inputs typed as the
//! runbook declares them, one run per concurrency key, the budget; not
//! the pause, which is for automatic starts). `--dry-run` shows the plan
//! instead and starts nothing.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec};
use crate::control::Command;
use crate::roles::Role;
use crate::runbook::plan::{build_plan, find_runbook};

pub const SPEC: Spec = Spec {
    name: "run",
    args: "RUNBOOK [NAME=VALUE...] [--dry-run]",
    role: Role::Responder,
    about: "start a runbook by hand with these inputs; --dry-run shows its plan instead",
    example: "run cap-listeners room=main headroom=0.9",
    flags: &["--dry-run"],
    parse: |a| Ok(Box::new(parse(a)?)),
};

#[derive(Debug, PartialEq)]
pub struct Run {
    pub runbook: String,
    pub inputs: BTreeMap<String, Json>,
    pub dry_run: bool,
}

pub fn parse(mut a: Args) -> Result<Run, String> {
    let dry_run = a.flag("--dry-run");
    let (runbook, inputs) = runbook_and_inputs(&mut a)?;
    Ok(Run {
        runbook,
        inputs,
        dry_run,
    })
}

/// `RUNBOOK NAME=VALUE...`, shared with `plan`. Values stay text; the
/// runbook's input types decide what they must be.
pub fn runbook_and_inputs(a: &mut Args) -> Result<(String, BTreeMap<String, Json>), String> {
    let runbook = a.required("the runbook name")?;
    let mut inputs = BTreeMap::new();
    while let Some(t) = a.word() {
        let Some((k, v)) = t.text.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(format!(
                "`{}` is not NAME=VALUE; give inputs as e.g. room=main",
                t.text
            ));
        };
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .map(|v| v.replace("\\\"", "\"").replace("\\\\", "\\"))
            .unwrap_or_else(|| v.to_owned());
        if inputs.insert(k.to_owned(), Json::String(v)).is_some() {
            return Err(format!("input `{k}` is given twice"));
        }
    }
    Ok((runbook, inputs))
}

/// The plan of a run, as `firebreak plan` prints it.
pub fn plan_text(ctx: &Ctx, runbook: &str, inputs: &BTreeMap<String, Json>) -> Reply {
    let runbooks = ctx.runbooks.get();
    let plan = find_runbook(&runbooks, runbook)
        .and_then(|rb| build_plan(rb, None, inputs, &ctx.targets, ctx.clock.now()));
    match plan {
        Ok(p) => Reply::private(p.to_string().trim_end().to_owned()),
        Err(e) => Reply::private(format!("no plan: {e}")),
    }
}

impl Execute for Run {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            if self.dry_run {
                return plan_text(ctx, &self.runbook, &self.inputs);
            }
            let r = ctx
                .ask(|reply| Command::Run {
                    runbook: self.runbook,
                    inputs: self.inputs,
                    by: actor.who(),
                    reply,
                })
                .await;
            // The run announces itself in the channel; this confirms.
            match r {
                Ok(Ok(started)) => Reply::private(started),
                Ok(Err(e)) => Reply::private(format!("not started: {e}")),
                Err(e) => Reply::private(format!("not started: {e}")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::handle;
    use super::super::testing::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn runbook_inputs_and_the_dry_run_flag() {
        let r = parse(Args::of(
            r#"cap-listeners room=main note="two words" --dry-run"#,
        ))
        .unwrap();
        assert_eq!(r.runbook, "cap-listeners");
        assert_eq!(r.inputs["room"], json!("main"));
        assert_eq!(r.inputs["note"], json!("two words"));
        assert!(r.dry_run);
        assert!(!parse(Args::of("cap-listeners")).unwrap().dry_run);
        let e = |l: &str| parse(Args::of(l)).unwrap_err();
        assert_eq!(e(""), "missing the runbook name");
        assert_eq!(
            e("cap-listeners main"),
            "`main` is not NAME=VALUE; give inputs as e.g. room=main"
        );
        assert_eq!(
            e("cap-listeners =x"),
            "`=x` is not NAME=VALUE; give inputs as e.g. room=main"
        );
        assert_eq!(
            e("cap-listeners room=a room=b"),
            "input `room` is given twice"
        );
    }

    #[tokio::test]
    async fn a_dry_run_plans_without_the_control_loop() {
        let (ctx, mut rx) = ctx().await;
        let r = handle(
            &ctx,
            &actor(Role::Responder),
            "run cap-listeners room=main --dry-run",
        )
        .await;
        assert!(r.text.contains("capping main at 0.95"), "{}", r.text);
        assert!(rx.try_recv().is_err(), "nothing was sent");
        let r = handle(&ctx, &actor(Role::Responder), "run cap-listners --dry-run").await;
        assert!(
            r.text.starts_with(
                "no plan: no runbook named \"cap-listners\" (did you mean \"cap-listeners\"?)"
            ),
            "{}",
            r.text
        );
        let r = handle(
            &ctx,
            &actor(Role::Responder),
            "run cap-listeners headroom=lots --dry-run",
        )
        .await;
        assert!(
            r.text.contains("input `room` (string) has no value"),
            "{}",
            r.text
        );
        assert!(r.text.contains("input `headroom`"), "{}", r.text);
    }

    #[tokio::test]
    async fn a_run_is_started_by_the_control_loop_as_the_asker() {
        let (ctx, mut rx) = ctx().await;
        let loop_ = tokio::spawn(async move {
            match rx.recv().await.unwrap() {
                Command::Run {
                    runbook,
                    inputs,
                    by,
                    reply,
                } => {
                    assert_eq!(
                        (runbook.as_str(), by.label().as_str()),
                        ("cap-listeners", "alice (U1)")
                    );
                    assert_eq!(inputs["room"], json!("main"));
                    reply
                        .send(Err(crate::dispatch::StartRefused::Busy {
                            run: "cap-1".into(),
                            key: "room/main".into(),
                        }))
                        .unwrap();
                }
                other => panic!("{other:?}"),
            }
        });
        let r = handle(&ctx, &actor(Role::Responder), "run cap-listeners room=main").await;
        loop_.await.unwrap();
        assert_eq!(
            r.text,
            "not started: run cap-1 is already handling room/main"
        );
        let r = handle(&ctx, &actor(Role::Viewer), "run cap-listeners room=main").await;
        assert_eq!(r.text, "`run` needs the responder role; you are a viewer");
    }
}
