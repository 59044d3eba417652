//! Approval gates: where runs wait for a person. A run registers its gate
//! here and waits; a command (chat, CLI) answers it through the control
//! loop. Who may answer is checked here, against the gate's `Approval`, so
//! every way in enforces the same rule: by the person's user id, which
//! they cannot change, never by the name they call themselves. The
//! outcome records both (`ana (U024BE7LH)`).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Millis};
use crate::roles::{Role, Who};
use crate::runbook::Approval;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateOutcome {
    Approved {
        by: Who,
    },
    Denied {
        by: Who,
    },
    TimedOut,
    /// The run was aborted or the bot is shutting down.
    Cancelled,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("run {0} is not waiting for an approval")]
    NotWaiting(String),
    #[error("approving `{what}` of run {run} needs {who}; you are a {role}")]
    NotAllowed {
        run: String,
        what: String,
        who: String,
        role: Role,
    },
}

/// A gate waiting for an answer, as status shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Waiting {
    pub run: String,
    pub what: String,
    pub who: String,
    pub deadline: Millis,
}

struct Open {
    what: String,
    approval: Approval,
    deadline: Millis,
    reply: oneshot::Sender<(Verdict, Who)>,
}

#[derive(Default)]
pub struct Gates {
    open: Mutex<HashMap<String, Open>>,
}

/// Takes the gate down however the wait ends (answered, timed out, or the
/// future dropped), so a stale gate never accepts an answer.
struct Registered<'a> {
    gates: &'a Gates,
    run: &'a str,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.gates.lock().remove(self.run);
    }
}

/// A gate that is open: answers are taken until [`OpenGate::outcome`]
/// returns or this is dropped.
pub struct OpenGate<'a> {
    rx: oneshot::Receiver<(Verdict, Who)>,
    _registered: Registered<'a>,
}

impl OpenGate<'_> {
    pub async fn outcome(
        self,
        clock: &Clock,
        deadline: Millis,
        cancel: &CancellationToken,
    ) -> GateOutcome {
        tokio::select! {
            answer = self.rx => match answer {
                Ok((Verdict::Approve, by)) => GateOutcome::Approved { by },
                Ok((Verdict::Deny, by)) => GateOutcome::Denied { by },
                Err(_) => GateOutcome::Cancelled,
            },
            _ = clock.sleep_until(deadline) => GateOutcome::TimedOut,
            _ = cancel.cancelled() => GateOutcome::Cancelled,
        }
    }
}

impl Gates {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Open>> {
        // A panic while holding this lock cannot leave the map half
        // changed (single inserts and removes), so poisoning is ignored.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds until the gate is answered, `deadline` passes, or `cancel`.
    pub async fn wait(
        &self,
        clock: &Clock,
        run: &str,
        what: &str,
        approval: &Approval,
        deadline: Millis,
        cancel: &CancellationToken,
    ) -> GateOutcome {
        self.open(run, what, approval, deadline)
            .outcome(clock, deadline, cancel)
            .await
    }

    /// Opens the gate now, so an answer is accepted from this moment;
    /// tell people only after this, or a quick answer finds no gate.
    pub fn open<'a>(
        &'a self,
        run: &'a str,
        what: &str,
        approval: &Approval,
        deadline: Millis,
    ) -> OpenGate<'a> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(
            run.to_owned(),
            Open {
                what: what.to_owned(),
                approval: approval.clone(),
                deadline,
                reply: tx,
            },
        );
        OpenGate {
            rx,
            _registered: Registered { gates: self, run },
        }
    }

    /// Answers the gate `run` waits at, if `by` with `role` may: the
    /// gate's `users` are compared with `by.id` only.
    /// Returns what was approved or denied.
    pub fn answer(
        &self,
        run: &str,
        verdict: Verdict,
        by: &Who,
        role: Role,
    ) -> Result<String, AnswerError> {
        let mut open = self.lock();
        let Some(gate) = open.get(run) else {
            return Err(AnswerError::NotWaiting(run.to_owned()));
        };
        // Anyone who may act on the run may deny it; approving is gated.
        if verdict == Verdict::Approve && !gate.approval.allows(&by.id, role) {
            return Err(AnswerError::NotAllowed {
                run: run.to_owned(),
                what: gate.what.clone(),
                who: gate.approval.who(),
                role,
            });
        }
        let gate = open.remove(run).expect("checked above");
        let _ = gate.reply.send((verdict, by.clone()));
        Ok(gate.what)
    }

    pub fn waiting(&self) -> Vec<Waiting> {
        let mut v: Vec<Waiting> = self
            .lock()
            .iter()
            .map(|(run, g)| Waiting {
                run: run.clone(),
                what: g.what.clone(),
                who: g.approval.who(),
                deadline: g.deadline,
            })
            .collect();
        v.sort_by(|a, b| a.run.cmp(&b.run));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::PromDuration;
    use crate::runbook::OnTimeout;
    use std::sync::Arc;

    fn approval() -> Approval {
        Approval {
            role: Role::Commander,
            users: vec!["U0LEAD".into()],
            timeout: PromDuration::from_secs(60),
            on_timeout: OnTimeout::Abort,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn only_allowed_people_approve_and_anyone_acting_may_deny() {
        let gates = Arc::new(Gates::default());
        let clock = Clock::scaled(0, 1.0);
        let cancel = CancellationToken::new();
        let g = gates.clone();
        let (c2, k2) = (clock.clone(), cancel.clone());
        let waiter =
            tokio::spawn(
                async move { g.wait(&c2, "run-1", "move", &approval(), 60_000, &k2).await },
            );
        tokio::task::yield_now().await;
        assert_eq!(gates.waiting().len(), 1);
        let e = gates
            .answer("run-1", Verdict::Approve, &bob(), Role::Responder)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("needs a commander or U0LEAD; you are a responder"),
            "{e}"
        );
        assert_eq!(
            gates.answer("run-2", Verdict::Approve, &bob(), Role::Commander),
            Err(AnswerError::NotWaiting("run-2".into()))
        );
        // A listed user approves whatever their role.
        assert_eq!(
            gates.answer("run-1", Verdict::Approve, &lead(), Role::Viewer),
            Ok("move".into())
        );
        assert_eq!(
            waiter.await.unwrap(),
            GateOutcome::Approved {
                by: Who::new("U0LEAD", "lee")
            }
        );
        assert!(gates.waiting().is_empty());

        let g = gates.clone();
        let waiter = tokio::spawn(async move {
            g.wait(&clock, "run-3", "move", &approval(), 60_000, &cancel)
                .await
        });
        tokio::task::yield_now().await;
        gates
            .answer("run-3", Verdict::Deny, &bob(), Role::Responder)
            .unwrap();
        assert_eq!(
            waiter.await.unwrap(),
            GateOutcome::Denied {
                by: Who::new("U0BOB", "bob")
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_gate_times_out_and_is_taken_down() {
        let gates = Gates::default();
        let clock = Clock::scaled(0, 1.0);
        let out = gates
            .wait(
                &clock,
                "run-1",
                "move",
                &approval(),
                30_000,
                &CancellationToken::new(),
            )
            .await;
        assert_eq!(out, GateOutcome::TimedOut);
        assert!(gates.waiting().is_empty());
        assert!(
            gates
                .answer("run-1", Verdict::Approve, &lead(), Role::Commander)
                .is_err()
        );
    }

    /// A viewer who renames themselves to the approver's id is still the
    /// viewer; the approver is known by their id whatever they call
    /// themselves.
    #[tokio::test(start_paused = true)]
    async fn a_name_that_looks_like_an_approvers_id_approves_nothing() {
        let gates = Arc::new(Gates::default());
        let clock = Clock::scaled(0, 1.0);
        let cancel = CancellationToken::new();
        let g = gates.clone();
        let waiter = tokio::spawn(async move {
            g.wait(&clock, "run-1", "move", &approval(), 60_000, &cancel)
                .await
        });
        tokio::task::yield_now().await;
        let impostor = Who::new("U0VIEWER", "U0LEAD");
        assert!(matches!(
            gates.answer("run-1", Verdict::Approve, &impostor, Role::Viewer),
            Err(AnswerError::NotAllowed { .. })
        ));
        let renamed_lead = Who::new("U0LEAD", "definitely-not-lee");
        assert_eq!(
            gates.answer("run-1", Verdict::Approve, &renamed_lead, Role::Viewer),
            Ok("move".into())
        );
        assert_eq!(
            waiter.await.unwrap(),
            GateOutcome::Approved {
                by: Who::new("U0LEAD", "definitely-not-lee")
            }
        );
    }

    fn bob() -> Who {
        Who::new("U0BOB", "bob")
    }

    fn lead() -> Who {
        Who::new("U0LEAD", "lee")
    }
}
