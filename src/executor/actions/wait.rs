//! `wait`: pause the run, on the bot's clock (so it is scaled in replays),
//! either for a fixed time or until a query says the mitigation worked.
//!
//! ```yaml
//! - id: settle
//!   action: wait
//!   with: {duration: 2m}
//! - id: recovered
//!   action: wait
//!   with:
//!     until: 'sum(live_room_listeners{room="backup"}) > 1000'
//!     within: 10m
//!     every: 15s        # optional, the default
//! ```
//!
//! `until` holds when the query gives a non-empty vector or a non-zero
//! scalar. It is asked at once, then every `every`, and a last time when
//! `within` has passed; if it never held the step fails (not retried) and
//! says what it last saw. A source that does not answer is noted and asked
//! again at the next poll.
//!
//! Output: `{waited}` for a duration; `{held: true, after, value}` for
//! `until`, where `value` is the first sample's value when it held.
//!
//! The step's default timeout is the wait (`duration` or `within`) plus a
//! margin; see `runbook::WAIT_TIMEOUT_MARGIN`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::query::{samples, short_expr};
use super::{Action, ActionError, ActionSpec, Done, StepCtx, check_expr, check_shape, is_template};
use crate::chat::BoxFut;
use crate::duration::PromDuration;
use crate::promql::Value;
use crate::runbook::CheckEnv;
use crate::runbook::spec::Lasts;
use crate::runbook::template::Lang;

pub struct Wait;

const DEFAULT_EVERY: PromDuration = PromDuration::from_secs(15);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    duration: Option<String>,
    until: Option<String>,
    within: Option<String>,
    every: Option<String>,
}

/// What a parsed `wait` does.
#[derive(Debug, PartialEq)]
enum Plan {
    For(PromDuration),
    Until {
        expr: String,
        within: PromDuration,
        every: PromDuration,
    },
}

const SHAPE: &str =
    "give either `duration: 5m`, or `until: EXPR` with `within: 10m` (and optionally `every: 15s`)";

impl Params {
    /// The shape problems, before any value is parsed.
    fn shape_errors(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        match (&self.duration, &self.until) {
            (Some(_), Some(_)) => errs.push((
                "until".into(),
                format!("`duration` and `until` cannot both be set; {SHAPE}"),
            )),
            (None, None) => errs.push((String::new(), format!("nothing to wait for; {SHAPE}"))),
            (Some(_), None) => {
                for (name, v) in [("within", &self.within), ("every", &self.every)] {
                    if v.is_some() {
                        errs.push((
                            name.into(),
                            "only applies with `until`; a `duration` wait always takes its whole duration".into(),
                        ));
                    }
                }
            }
            (None, Some(_)) if self.within.is_none() => errs.push((
                "within".into(),
                "`until` needs `within`: how long to wait before the step fails".into(),
            )),
            (None, Some(_)) => {}
        }
        errs
    }

    /// Parses into a plan (rendered parameters: nothing is a template).
    fn plan(&self) -> Result<Plan, (String, String)> {
        let dur = |name: &str, v: &str| {
            PromDuration::parse(v).map_err(|e| (name.to_owned(), e.to_string()))
        };
        if let Some(errs) = self.shape_errors().into_iter().next() {
            return Err(errs);
        }
        match (&self.duration, &self.until) {
            (Some(d), _) => Ok(Plan::For(dur("duration", d)?)),
            (None, Some(expr)) => {
                let within = dur("within", self.within.as_deref().unwrap_or_default())?;
                let every = match &self.every {
                    Some(e) => dur("every", e)?,
                    None => DEFAULT_EVERY,
                };
                if every.is_zero() {
                    return Err(("every".into(), "must be greater than 0s".into()));
                }
                Ok(Plan::Until {
                    expr: expr.clone(),
                    within,
                    every,
                })
            }
            (None, None) => unreachable!("shape_errors rejects this"),
        }
    }
}

impl ActionSpec for Wait {
    fn name(&self) -> &'static str {
        "wait"
    }

    fn langs(&self) -> &'static [(&'static str, Lang)] {
        &[("until", Lang::Promql)]
    }

    fn check(&self, with: &Json, _env: &CheckEnv) -> Vec<(String, String)> {
        let p = match check_shape::<Params>(with) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let mut errs = p.shape_errors();
        if !errs.is_empty() {
            return errs;
        }
        for (name, v) in [
            ("duration", &p.duration),
            ("within", &p.within),
            ("every", &p.every),
        ] {
            match v {
                Some(v) if !is_template(v) => match PromDuration::parse(v) {
                    Ok(d) if d.is_zero() && name == "every" => {
                        errs.push((name.into(), "must be greater than 0s".into()))
                    }
                    Ok(_) => {}
                    Err(e) => errs.push((name.into(), e.to_string())),
                },
                _ => {}
            }
        }
        if let Some(expr) = &p.until {
            errs.extend(check_expr("until", expr));
        }
        errs
    }

    fn lasts(&self, with: &Json) -> Lasts {
        let Some(d) = with
            .get("duration")
            .or_else(|| with.get("within"))
            .and_then(Json::as_str)
        else {
            return Lasts::Briefly;
        };
        PromDuration::parse(d).map_or(Lasts::Unknown, Lasts::For)
    }
}

impl Action for Wait {
    /// A resumed wait waits only for what is left of it.
    fn repeatable(&self, _with: &Json, _env: &super::ActionEnv) -> bool {
        true
    }

    fn run<'a>(
        &'a self,
        ctx: &'a StepCtx<'a>,
        with: Json,
    ) -> BoxFut<'a, Result<Done, ActionError>> {
        Box::pin(async move {
            let p: Params = super::params(with)?;
            match p
                .plan()
                .map_err(|(f, e)| ActionError::fatal(format!("{f}: {e}")))?
            {
                Plan::For(d) => {
                    // Measured from the step's first start, so a resumed
                    // wait waits only for what is left of it.
                    let until = ctx.first_started_at + d.as_millis() as i64;
                    tokio::select! {
                        _ = ctx.env.clock.sleep_until(until) => {}
                        _ = ctx.cancel.cancelled() => return Err(ActionError::fatal("cancelled")),
                    }
                    Ok(Done {
                        output: json!({"waited": d.to_string()}),
                        summary: format!("waited {d}"),
                        answered: None,
                    })
                }
                Plan::Until {
                    expr,
                    within,
                    every,
                } => until(ctx, &expr, within, every).await,
            }
        })
    }
}

/// Whether a query result says the condition holds, and its first value.
fn holds(v: Value) -> Result<(bool, Option<f64>), String> {
    if let Value::Scalar(x) = v {
        return Ok((x != 0.0 && !x.is_nan(), Some(x)));
    }
    // A vector holds when anything is left: `sum(x) >= 0` that gives 0
    // still holds.
    let first = samples(v)?.first().map(|s| s.value);
    Ok((first.is_some(), first))
}

async fn until(
    ctx: &StepCtx<'_>,
    expr: &str,
    within: PromDuration,
    every: PromDuration,
) -> Result<Done, ActionError> {
    let clock = &ctx.env.clock;
    // The deadline counts from the step's first start, across restarts.
    let start = ctx.first_started_at;
    let deadline = start + within.as_millis() as i64;
    loop {
        let last_seen = match super::run_query(ctx, "until", expr).await {
            Ok(v) => {
                let (held, value) =
                    holds(v).map_err(|e| ActionError::fatal(format!("until: {e}")))?;
                if held {
                    let after = PromDuration::from_millis((clock.now() - start).max(0) as u64);
                    return Ok(Done {
                        output: json!({"held": true, "after": after.to_string(), "value": value}),
                        // The chat line adds how long the step took.
                        summary: format!("`{}` held", short_expr(expr)),
                        answered: None,
                    });
                }
                match value {
                    None => "an empty result".to_owned(),
                    Some(x) => format!("{x}"),
                }
            }
            // The source may come back before the deadline.
            Err(e) if e.retryable => format!("an error: {}", e.message),
            Err(e) => return Err(e),
        };
        let now = clock.now();
        if now >= deadline {
            return Err(ActionError::fatal(format!(
                "`{}` did not hold within {within}; last saw {last_seen}",
                short_expr(expr)
            )));
        }
        let pause = Duration::from_millis((deadline - now) as u64).min(every.to_std());
        tokio::select! {
            _ = clock.sleep(pause) => {}
            _ = ctx.cancel.cancelled() => return Err(ActionError::fatal("cancelled")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;
    use crate::promql::Sample;

    fn check(with: Json) -> Vec<(String, String)> {
        Wait.check(&with, &crate::load::check_env([]))
    }

    #[test]
    fn checks_duration() {
        assert!(check(json!({"duration": "30s"})).is_empty());
        assert!(check(json!({"duration": "{{ inputs.d }}"})).is_empty());
        let e = check(json!({"duration": "30"}));
        assert_eq!(e[0].0, "duration");
    }

    #[test]
    fn checks_until_and_exactly_one_kind_of_wait() {
        assert!(check(json!({"until": "up == 1", "within": "5m"})).is_empty());
        assert!(check(json!({"until": "up{job=\"{{ inputs.j }}\"}", "within": "{{ inputs.w }}", "every": "5s"})).is_empty());

        let e = check(json!({}));
        assert_eq!(e[0].0, "");
        assert!(e[0].1.contains("either `duration"), "{e:?}");
        let e = check(json!({"duration": "1m", "until": "up"}));
        assert!(e[0].1.contains("cannot both"), "{e:?}");
        let e = check(json!({"until": "up"}));
        assert_eq!(e[0].0, "within");
        let e = check(json!({"duration": "1m", "within": "5m"}));
        assert_eq!(e[0].0, "within");
        let e = check(json!({"until": "up ==", "within": "5m"}));
        assert_eq!(e[0].0, "until");
        assert!(e[0].1.contains("invalid PromQL"), "{e:?}");
        let e = check(json!({"until": "up", "within": "5 minutes"}));
        assert_eq!(e[0].0, "within");
        let e = check(json!({"until": "up", "within": "5m", "every": "0s"}));
        assert_eq!(e[0], ("every".into(), "must be greater than 0s".into()));
    }

    #[test]
    fn plans_default_every_to_15s() {
        let p = Params {
            duration: None,
            until: Some("up".into()),
            within: Some("2m".into()),
            every: None,
        };
        assert_eq!(
            p.plan().unwrap(),
            Plan::Until {
                expr: "up".into(),
                within: PromDuration::from_secs(120),
                every: DEFAULT_EVERY
            }
        );
    }

    #[test]
    fn holds_on_a_non_empty_vector_or_non_zero_scalar() {
        let sample = |v: f64| Sample {
            labels: Labels::new().with("room", "a"),
            value: v,
        };
        assert_eq!(holds(Value::Vector(vec![])).unwrap(), (false, None));
        assert_eq!(
            holds(Value::Vector(vec![sample(0.0)])).unwrap(),
            (true, Some(0.0))
        );
        let unlabelled = Sample {
            labels: Labels::new(),
            value: 0.0,
        };
        assert_eq!(
            holds(Value::Vector(vec![unlabelled])).unwrap(),
            (true, Some(0.0))
        );
        assert_eq!(holds(Value::Scalar(0.0)).unwrap(), (false, Some(0.0)));
        assert_eq!(holds(Value::Scalar(2.0)).unwrap(), (true, Some(2.0)));
        assert!(holds(Value::String("x".into())).is_err());
    }
}
