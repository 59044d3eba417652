//! `silence`: silence matching alerts for a while, as an Alertmanager
//! silence would: while it lasts, a matching alert that fires is recorded
//! but posts nothing and starts no runbook. For a mitigation that is
//! known to trip other alerts (moving an event trips the old room's
//! alerts).
//!
//! ```yaml
//! - id: quiet_old_room
//!   action: silence
//!   with:
//!     matchers: 'alertname="RoomFull",event="{{ inputs.event | matcher }}"'
//!     duration: 30m
//!     comment: moved to the backup room   # optional
//! ```
//!
//! `matchers` use the Alertmanager syntax (`=`, `!=`, `=~`, `!~`, braces
//! optional); at least one must need a non-empty value, so a silence can
//! never cover every alert. Output: `{id, ends_at}` (`ends_at` in ms since
//! the epoch, on the bot's clock).

use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{Action, ActionError, ActionSpec, Done, StepCtx, check_shape, is_template};
use crate::chat::BoxFut;
use crate::clock::Millis;
use crate::duration::PromDuration;
use crate::matchers::{Matcher, parse_matchers};
use crate::runbook::CheckEnv;
use crate::runbook::template::Lang;
use crate::silence::matchers_text;

pub struct Silence;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    matchers: String,
    duration: String,
    #[serde(default)]
    comment: String,
}

fn matchers(text: &str) -> Result<Vec<Matcher>, String> {
    let ms = parse_matchers(text).map_err(|e| {
        format!(
            "{e}; expected Alertmanager matchers like alertname=\"RoomFull\",room=~\"main|backup\""
        )
    })?;
    if ms.is_empty() {
        return Err(
            "no matchers; a silence needs at least one, such as alertname=\"RoomFull\"".into(),
        );
    }
    if ms.iter().all(Matcher::matches_empty) {
        return Err(format!(
            "{} would silence every alert; at least one matcher must need a non-empty value, such as alertname=\"RoomFull\"",
            matchers_text(&ms)
        ));
    }
    Ok(ms)
}

fn duration(text: &str) -> Result<PromDuration, String> {
    match PromDuration::parse(text) {
        Ok(d) if d.is_zero() => Err("must be greater than 0s".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

impl ActionSpec for Silence {
    fn name(&self) -> &'static str {
        "silence"
    }

    fn langs(&self) -> &'static [(&'static str, Lang)] {
        &[("matchers", Lang::Matchers)]
    }

    fn check(&self, with: &Json, _env: &CheckEnv) -> Vec<(String, String)> {
        let p = match check_shape::<Params>(with) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let mut errs = Vec::new();
        if !is_template(&p.matchers)
            && let Err(e) = matchers(&p.matchers)
        {
            errs.push(("matchers".into(), e));
        }
        if !is_template(&p.duration)
            && let Err(e) = duration(&p.duration)
        {
            errs.push(("duration".into(), e));
        }
        errs
    }
}

/// Whoever owns silences (the control loop), as this action sees it: one
/// call, so a step can ask for a silence and nothing else of its owner.
pub trait Silencer: Send + Sync {
    fn silence(&self, ask: Ask) -> BoxFut<'_, Result<Granted, SilenceError>>;
}

/// A silence a step asks for. With the step's idempotency key as `key`,
/// asking twice makes one silence: a step repeated after a restart gets
/// the first one back.
#[derive(Clone, Debug, PartialEq)]
pub struct Ask {
    pub matchers: Vec<Matcher>,
    pub duration_ms: Millis,
    pub by: String,
    pub comment: String,
    pub key: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Granted {
    pub id: String,
    pub ends_at: Millis,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SilenceError {
    #[error("the control loop has stopped (shutdown)")]
    Stopped,
    #[error("silence refused: {0}")]
    Refused(String),
}

impl Action for Silence {
    /// The silence is named by the step's idempotency key, so asking again
    /// after a restart gets the same one back.
    fn repeatable(&self, _with: &Json, _env: &super::ActionEnv) -> bool {
        true
    }

    /// A silence changes what the bot alerts on.
    fn changes(&self, _with: &Json) -> bool {
        true
    }

    fn run<'a>(
        &'a self,
        ctx: &'a StepCtx<'a>,
        with: Json,
    ) -> BoxFut<'a, Result<Done, ActionError>> {
        Box::pin(async move {
            let p: Params = super::params(with)?;
            let ms =
                matchers(&p.matchers).map_err(|e| ActionError::fatal(format!("matchers: {e}")))?;
            let d =
                duration(&p.duration).map_err(|e| ActionError::fatal(format!("duration: {e}")))?;
            let silencer = ctx.env.silencer.as_ref().ok_or_else(|| {
                ActionError::fatal("silences need the control loop, which is not running here")
            })?;
            let shown = matchers_text(&ms);
            let ask = Ask {
                matchers: ms,
                duration_ms: d.as_millis() as i64,
                by: format!("runbook run {}", ctx.run_id),
                comment: p.comment,
                key: ctx.idempotency_key.clone(),
            };
            let Granted { id, ends_at } = tokio::select! {
                r = silencer.silence(ask) => r,
                _ = ctx.cancel.cancelled() => return Err(ActionError::fatal("cancelled")),
            }
            .map_err(|e| ActionError::fatal(e.to_string()))?;
            Ok(Done {
                summary: format!("silenced {shown} for {d} (id {id})"),
                output: json!({"id": id, "ends_at": ends_at}),
                answered: None,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(with: Json) -> Vec<(String, String)> {
        Silence.check(&with, &crate::load::check_env([]))
    }

    #[test]
    fn checks_matchers_and_duration_unless_templated() {
        assert!(check(json!({"matchers": "alertname=\"X\",event=\"{{ inputs.event }}\"", "duration": "30m"})).is_empty());
        assert!(check(json!({"matchers": "{alertname=\"X\", room=~\"a|b\"}", "duration": "{{ inputs.d }}", "comment": "c"})).is_empty());

        let e = check(json!({"matchers": "alertname=\"X", "duration": "30m"}));
        assert_eq!(e[0].0, "matchers");
        assert!(e[0].1.contains("expected Alertmanager matchers"), "{e:?}");
        let e = check(json!({"matchers": "room=~\".*\"", "duration": "30m"}));
        assert!(e[0].1.contains("every alert"), "{e:?}");
        let e = check(json!({"matchers": "", "duration": "30m"}));
        assert_eq!(e[0].0, "matchers");
        let e = check(json!({"matchers": "alertname=X", "duration": "0s"}));
        assert_eq!(e[0], ("duration".into(), "must be greater than 0s".into()));
        let e = check(json!({"matchers": "alertname=X", "duration": "half an hour"}));
        assert_eq!(e[0].0, "duration");
        let e = check(json!({"matchers": "alertname=X"}));
        assert!(e[0].1.contains("duration"), "{e:?}");
    }
}
