//! `plan RUNBOOK [NAME=VALUE...]`: what a run would do, step by step,
//! without doing it (as `firebreak plan` prints it). For anyone: it
//! changes nothing.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec};
use crate::roles::Role;

pub const SPEC: Spec = Spec {
    name: "plan",
    args: "RUNBOOK [NAME=VALUE...]",
    role: Role::Viewer,
    about: "show what a run of RUNBOOK would do, without doing it",
    example: "plan move-to-secondary-room event=launch",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a)?)),
};

#[derive(Debug, PartialEq)]
pub struct Plan {
    pub runbook: String,
    pub inputs: BTreeMap<String, Json>,
}

pub fn parse(mut a: Args) -> Result<Plan, String> {
    let (runbook, inputs) = super::run::runbook_and_inputs(&mut a)?;
    Ok(Plan { runbook, inputs })
}

impl Execute for Plan {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, _actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move { super::run::plan_text(ctx, &self.runbook, &self.inputs) })
    }
}

#[cfg(test)]
mod tests {
    use super::super::handle;
    use super::super::testing::*;
    use super::*;

    #[tokio::test]
    async fn a_viewer_may_plan() {
        let (ctx, _rx) = ctx().await;
        let r = handle(
            &ctx,
            &actor(Role::Viewer),
            "plan cap-listeners room=\"main\"",
        )
        .await;
        assert!(
            r.text.starts_with("plan of runbook cap-listeners"),
            "{}",
            r.text
        );
        assert!(r.text.contains("capping main at 0.95"), "{}", r.text);
        let r = handle(&ctx, &actor(Role::Viewer), "plan cap-listeners --dry-run").await;
        assert!(
            r.text
                .starts_with("unknown flag `--dry-run`; `plan` takes no flags"),
            "{}",
            r.text
        );
        assert_eq!(parse(Args::of("")).unwrap_err(), "missing the runbook name");
    }
}
