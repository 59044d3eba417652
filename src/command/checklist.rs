//! `checklist NAME`: run a pre-event checklist (GO / NO-GO). Checklists
//! load and validate (`firebreak validate`), but running them is not built
//! yet; the command is in the grammar so that people find it, and it says
//! so plainly rather than pretending to check anything.

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec};
use crate::roles::Role;

pub const SPEC: Spec = Spec {
    name: "checklist",
    args: "NAME",
    role: Role::Viewer,
    about: "pre-event checklist NAME: GO or NO-GO (running them is not built yet)",
    example: "checklist launch-readiness",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a)?)),
};

#[derive(Debug, PartialEq)]
pub struct Checklist {
    pub name: String,
}

pub fn parse(mut a: Args) -> Result<Checklist, String> {
    let name = a.required("the checklist name")?;
    a.finish()?;
    Ok(Checklist { name })
}

impl Execute for Checklist {
    fn execute<'a>(self: Box<Self>, _ctx: &'a Ctx, _actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            Reply::private(format!(
                "cannot run checklist {:?}: this version of firebreak validates checklists (`firebreak validate`) but cannot run them yet",
                self.name
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::handle;
    use super::super::testing::*;
    use super::*;

    #[tokio::test]
    async fn checklist_answers_truthfully() {
        let (ctx, _rx) = ctx().await;
        let r = handle(&ctx, &actor(Role::Viewer), "checklist launch-readiness").await;
        assert_eq!(
            r.text,
            "cannot run checklist \"launch-readiness\": this version of firebreak validates checklists (`firebreak validate`) but cannot run them yet"
        );
        let r = handle(&ctx, &actor(Role::Viewer), "checklist").await;
        assert_eq!(r.text, "missing the checklist name\nusage: checklist NAME");
    }
}
