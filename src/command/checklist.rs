//! `checklist [NAME [KEY=VALUE...]]`: run a pre-event checklist. The run
//! posts one card in the channel that fills in as checks finish and ends
//! GO or NO-GO with the evidence; sign-offs are given on the card (or with
//! `signoff`). Without a name it lists the loaded checklists.

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec};
use crate::control::Command;
use crate::preflight::task::Request;
use crate::roles::Role;

pub const SPEC: Spec = Spec {
    name: "checklist",
    args: "[NAME [KEY=VALUE...]]",
    role: Role::Responder,
    about: "run pre-event checklist NAME now (GO or NO-GO, with the evidence); KEY=VALUE replaces an event parameter; no NAME lists them",
    example: "checklist launch-readiness expected_audience=250000",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a)?)),
};

#[derive(Debug, PartialEq)]
pub struct Checklist {
    pub name: Option<String>,
    pub overrides: Vec<(String, String)>,
}

pub fn parse(mut a: Args) -> Result<Checklist, String> {
    let name = a.word().map(|t| t.text);
    let mut words = Vec::new();
    while let Some(t) = a.word() {
        words.push(t.text);
    }
    let overrides = crate::preflight::parse_overrides(&words)?;
    Ok(Checklist { name, overrides })
}

impl Execute for Checklist {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            let Checklist { name, overrides } = *self;
            let Some(name) = name else {
                return Reply::private(list(ctx));
            };
            let r = ctx
                .ask(|reply| {
                    Command::Checklist(Request::Start {
                        name,
                        overrides,
                        by: crate::timeline::By::person(&actor.who()),
                        reply,
                    })
                })
                .await;
            match r {
                Ok(Ok(started)) => Reply::private(started),
                Ok(Err(e)) => Reply::private(format!("not started: {e}")),
                Err(e) => Reply::private(format!("not started: {e}")),
            }
        })
    }
}

fn list(ctx: &Ctx) -> String {
    let checklists = ctx.checklists.get();
    if checklists.is_empty() {
        return "no checklists are loaded (`kind: checklist` files under the runbook paths)".into();
    }
    let mut out = String::from("checklists (run one with `checklist NAME`):");
    for c in checklists.iter() {
        let schedule = if c.schedule.is_empty() {
            String::new()
        } else {
            let at: Vec<String> = c.schedule.iter().map(|d| format!("T-{d}")).collect();
            format!(" · runs by itself at {}", at.join(", "))
        };
        out.push_str(&format!(
            "\n• *{}*: {} checks{schedule}",
            c.name,
            c.checks.len()
        ));
        if !c.description.is_empty() {
            out.push_str(&format!(" · {}", crate::chat::clip(&c.description, 160)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::handle;
    use super::super::testing::*;
    use super::*;
    use crate::preflight::task::ChecklistRefused;

    #[test]
    fn a_name_and_event_parameters() {
        assert_eq!(
            parse(Args::of("launch-readiness expected_audience=250000 room=b")).unwrap(),
            Checklist {
                name: Some("launch-readiness".into()),
                overrides: vec![
                    ("expected_audience".into(), "250000".into()),
                    ("room".into(), "b".into())
                ],
            }
        );
        assert_eq!(
            parse(Args::of("")).unwrap(),
            Checklist {
                name: None,
                overrides: vec![]
            }
        );
        assert_eq!(
            parse(Args::of("launch-readiness 250000")).unwrap_err(),
            "\"250000\" is not an event parameter; write KEY=VALUE, like expected_audience=250000"
        );
    }

    #[tokio::test]
    async fn a_run_is_asked_of_the_runner_through_the_control_queue() {
        let (ctx, mut rx) = ctx().await;
        let answer = tokio::spawn(async move {
            match rx.recv().await {
                Some(Command::Checklist(Request::Start {
                    name,
                    overrides,
                    by,
                    reply,
                })) => {
                    assert_eq!(name, "launch-readiness");
                    assert_eq!(overrides, [("room".to_owned(), "b".to_owned())]);
                    assert_eq!(by.label(), "alice (U1)");
                    let _ = reply.send(Err(ChecklistRefused::NoChecklist(
                        crate::preflight::NoChecklist {
                            name: "launch-readiness".into(),
                            hint: None,
                            loaded: vec!["drill".into()],
                        },
                    )));
                }
                other => panic!("unexpected {other:?}"),
            }
        });
        let r = handle(
            &ctx,
            &actor(Role::Responder),
            "checklist launch-readiness room=b",
        )
        .await;
        answer.await.unwrap();
        assert_eq!(
            r.text,
            "not started: no checklist named \"launch-readiness\"; loaded: drill"
        );
        let r = handle(&ctx, &actor(Role::Viewer), "checklist launch-readiness").await;
        assert!(r.text.contains("needs the responder role"), "{}", r.text);
    }

    #[tokio::test]
    async fn without_a_name_it_lists_what_is_loaded() {
        let (mut ctx, _rx) = ctx().await;
        let r = handle(&ctx, &actor(Role::Responder), "checklist").await;
        assert_eq!(
            r.text,
            "no checklists are loaded (`kind: checklist` files under the runbook paths)"
        );
        let loaded =
            crate::load::load_embedded(crate::config::Config::for_simulator("127.0.0.1:9100"))
                .unwrap();
        ctx.checklists = loaded.checklists.into();
        let r = handle(&ctx, &actor(Role::Responder), "checklist").await;
        assert!(
            r.text
                .starts_with("checklists (run one with `checklist NAME`):\n• *launch-readiness*: "),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("runs by itself at T-1h, T-10m"),
            "{}",
            r.text
        );
    }
}
