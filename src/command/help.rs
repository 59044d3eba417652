//! `help [COMMAND]`: the commands this person may use, or one in detail.

use super::{Actor, Args, BoxFut, COMMANDS, Ctx, Execute, Reply, Spec, find, hint, names};
use crate::roles::Role;

pub const SPEC: Spec = Spec {
    name: "help",
    args: "[COMMAND]",
    role: Role::Viewer,
    about: "list the commands, or explain one",
    example: "help silence",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a)?)),
};

#[derive(Debug, PartialEq)]
pub struct Help {
    pub topic: Option<String>,
}

pub fn parse(mut a: Args) -> Result<Help, String> {
    let topic = a.word().map(|t| t.text);
    a.finish()?;
    Ok(Help { topic })
}

/// The full list, with the role each command needs, and where the asker
/// stands.
pub fn text(role: Role) -> String {
    let width = COMMANDS
        .iter()
        .map(|s| s.name.len() + 1 + s.args.len())
        .max()
        .unwrap_or(0);
    let mut out = String::from("firebreak commands (minimum role in brackets):\n");
    for s in COMMANDS {
        let call = format!("{} {}", s.name, s.args);
        out.push_str(&format!("  {call:<width$}  {} [{}]\n", s.about, s.role));
    }
    out.push_str(&format!(
        "Quote arguments with spaces: \"like this\". You are a {role}. `help COMMAND` explains one."
    ));
    out
}

/// One command: usage, what it does, who may, an example.
pub fn detail(s: &Spec) -> String {
    format!(
        "{}\n{}; needs the {} role.\nexample: {}",
        s.usage(),
        s.about,
        s.role,
        s.example
    )
}

impl Execute for Help {
    fn execute<'a>(self: Box<Self>, _ctx: &'a Ctx, actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            match &self.topic {
                None => Reply::private(text(actor.role)),
                Some(t) => match find(t) {
                    Some(s) => Reply::private(detail(s)),
                    None => Reply::private(format!(
                        "no command `{t}`{}; `help` lists them",
                        hint(t, &names())
                    )),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::handle;
    use super::super::testing::*;
    use super::*;

    #[tokio::test]
    async fn help_lists_every_command_and_explains_one() {
        let (ctx, _rx) = ctx().await;
        let r = handle(&ctx, &actor(Role::Responder), "help").await;
        insta::assert_snapshot!("help", r.text);
        let r = handle(&ctx, &actor(Role::Viewer), "help silence").await;
        assert_eq!(
            r.text,
            "usage: silence MATCHERS DURATION [COMMENT]\nsilence alerts matching MATCHERS for DURATION; needs the responder role.\nexample: silence alertname=\"SpeakerFeedback\" room=\"main\" 30m \"host is on it\""
        );
        let r = handle(&ctx, &actor(Role::Viewer), "help silnce").await;
        assert_eq!(
            r.text,
            "no command `silnce` (did you mean `silence`?); `help` lists them"
        );
        let r = handle(&ctx, &actor(Role::Viewer), "help a b").await;
        assert_eq!(r.text, "unexpected `b`\nusage: help [COMMAND]");
    }

    #[test]
    fn parse_takes_one_topic() {
        assert_eq!(parse(Args::of("")).unwrap(), Help { topic: None });
        assert_eq!(
            parse(Args::of("run")).unwrap(),
            Help {
                topic: Some("run".into())
            }
        );
    }
}
