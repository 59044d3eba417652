//! One replica of `firebreak run` on a PostgreSQL store: it follows until
//! it takes the leader lease, leads (the whole daemon, its store fenced by
//! the lease) until it loses or gives up the lease, then follows again.
//!
//! ```text
//!            take (every poll)              renew (every lease/3)
//! follow ───────────────────────▶ lead ◀────────────────────┐
//!   ▲   serves health, /metrics,   │ the daemon, on a fenced  │
//!   │   reads, keeps pushes for    │ store; its routes on the │
//!   │   the leader in the store    │ listener                 │
//!   └──────────────────────────────┘──────────────────────────┘
//!        lost: no renew in time (stops before the lease can
//!        expire), taken, or a write refused by the fence
//! ```
//!
//! Takeover is the restart path: the new leader's daemon starts as a
//! restarted process does, resuming the runs the old one left.
//!
//! Timing, from the lease `L`: renewals every `L/3`; a leader that has
//! not renewed by `L - L/5` after its last successful renewal was sent
//! demotes itself (its lease, dated by the database after the send, is
//! then still valid for at least `L/5`, so no one else can yet have it);
//! followers try to take it every `L/10` (100ms..1s). A leader that dies
//! is replaced within about `L + L/10`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::chat::ChatAdapter;
use crate::clock::Clock;
use crate::daemon::Daemon;
use crate::front::{Front, Role};
use crate::human::span as human_ms;
use crate::store::{Fence, Lease, Store};
use crate::timeline::{About, By, Kind, TimelineEntry};

/// How long a demoted leader waits for its daemon to wind down before it
/// follows again regardless (its writes are refused by then anyway).
const WIND_DOWN: Duration = Duration::from_secs(10);

/// This replica's name in the lease: `FIREBREAK_REPLICA_NAME`, else the
/// host's name and the process id. Names need not be unique for safety
/// (the epoch fences), only to tell replicas apart when reading.
pub fn default_name() -> String {
    let named = std::env::var("FIREBREAK_REPLICA_NAME").ok();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok());
    replica_name(named.as_deref(), host.as_deref(), std::process::id())
}

/// The name given, else `host-pid`: at most 64 characters of
/// `[A-Za-z0-9._-]`, since it goes into chat (inside a code span),
/// `/-/ready`, logs and the store.
fn replica_name(named: Option<&str>, host: Option<&str>, pid: u32) -> String {
    let clean = |s: &str, max: usize| -> String {
        s.trim()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .take(max)
            .collect()
    };
    match named.map(|n| clean(n, 64)).filter(|n| !n.is_empty()) {
        Some(n) => n,
        None => {
            let host = host.map(|h| clean(h, 48)).filter(|h| !h.is_empty());
            format!("{}-{pid}", host.as_deref().unwrap_or("firebreak"))
        }
    }
}

/// What a follower serves: the API on the unfenced store, with pushes
/// kept for the leader and `/-/ready` saying who leads, and Slack's
/// request URLs, checked here and done by the leader.
pub fn follower_api(
    config: &crate::config::Config,
    store: Store,
    clock: Clock,
    status: Arc<crate::front::Status>,
    shutdown: CancellationToken,
) -> anyhow::Result<axum::Router> {
    // A follower queues nothing and commands nothing: what would go to a
    // watcher or control loop goes to the store for the leader, or is
    // refused as the leader's to answer.
    let (pushed, _) = tokio::sync::mpsc::channel(1);
    let (control, _) = tokio::sync::mpsc::channel(1);
    let token = match &config.server.token_secret {
        Some(name) => Some(
            crate::secrets::secret_named(&config.secrets, name)
                .map_err(|e| anyhow::anyhow!("server.token_secret: {e}"))?,
        ),
        None => None,
    };
    let mut slack = axum::Router::new();
    if let Some(cfg) = &config.chat.slack
        && let Some(name) = &cfg.signing_secret
    {
        let secret = crate::secrets::secret_named(&config.secrets, name)
            .map_err(|e| anyhow::anyhow!("chat.slack.signing_secret: {e}"))?;
        slack =
            crate::inbound::slack::forwarding_routes(Arc::new(crate::inbound::slack::Forwarder {
                verifier: crate::inbound::slack::Verifier::new(
                    Some(secret.into_bytes()),
                    store.clone(),
                    clock.clone(),
                ),
                me: status.me.clone(),
            }));
    }
    Ok(crate::api::routes_with(
        Arc::new(crate::api::Api {
            pushed,
            control,
            store,
            clock,
            token,
            max_body_bytes: config.server.max_body_bytes,
            shutdown,
            push_wait: crate::api::PUSH_WAIT,
            replica: Some(status),
            // A follower watches nothing, so it cannot go blind.
            sight: crate::sight::Board::new(),
            // People sign in at any replica; only the leader acts.
            console: crate::api::console::Settings::new(
                &config.server.console,
                config.chat.roles.clone(),
                None,
            ),
        }),
        slack,
    ))
}

/// The timings that follow from one lease length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub lease: Duration,
    pub renew_every: Duration,
    /// How long before its lease could expire a leader that has not
    /// renewed stops.
    pub margin: Duration,
    pub poll: Duration,
}

impl Timing {
    pub fn new(lease: Duration) -> Timing {
        Timing {
            lease,
            renew_every: lease / 3,
            margin: lease / 5,
            poll: (lease / 10).clamp(Duration::from_millis(100), Duration::from_secs(1)),
        }
    }
}

/// Why a leadership ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    Shutdown,
    /// Not renewed in time: the store is slow or unreachable.
    RenewFailed,
    /// Renewing found the lease someone else's (or expired).
    Taken,
    /// A write of this epoch was refused.
    Fenced,
}

impl Ended {
    fn reason(self) -> &'static str {
        match self {
            Ended::Shutdown => "shutdown",
            Ended::RenewFailed => "renew_failed",
            Ended::Taken => "taken",
            Ended::Fenced => "fenced",
        }
    }
}

pub struct Replica<F> {
    /// Not fenced: what a follower reads and writes.
    pub store: Store,
    pub front: Front,
    /// The routes served while following.
    pub follower_routes: axum::Router,
    pub timing: Timing,
    pub clock: Clock,
    /// Where the replica says, straight to chat (the outbox is in the
    /// store it cannot reach), that it stopped acting for want of the
    /// store, and that it reaches it again.
    pub chat: Arc<dyn ChatAdapter>,
    pub channel: String,
    /// Starts the daemon on a fenced store, stopping at the token.
    pub lead: F,
}

impl<F, Fut> Replica<F>
where
    F: FnMut(Store, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<Daemon>>,
{
    /// Follows and leads until `shutdown`; a leader then stops its daemon
    /// (runs suspended, chat flushed) and releases the lease so a
    /// follower takes over at once.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let me = self.front.status.me.clone();
        let ttl_ms = self.timing.lease.as_millis() as i64;
        self.front.set(self.follower_routes.clone());
        let mut blind = false;
        let mut told_chat = false;
        loop {
            // Follow until the lease is ours.
            let (lease, sent) = loop {
                if shutdown.is_cancelled() {
                    return;
                }
                let sent = Instant::now();
                // Bounded: a store out of reach can take its pool's
                // whole acquire timeout to say so.
                let limit = self.timing.lease;
                let silent = || {
                    format!(
                        "it did not answer within {}",
                        human_ms(limit.as_millis() as i64)
                    )
                };
                match tokio::time::timeout(limit, self.store.take_lease(&me, ttl_ms)).await {
                    Ok(Ok(Some(l))) => break (l, sent),
                    Ok(Ok(None)) => match tokio::time::timeout(limit, self.store.lease()).await {
                        Ok(Ok((l, now))) => {
                            let leader = l.filter(|l| l.expires_at > now);
                            self.front.status.set(Role::Following {
                                leader: leader.map(|l| (l.holder, l.epoch)),
                            });
                            self.see_store(&mut blind, &mut told_chat).await;
                        }
                        Ok(Err(e)) => self.lose_store(&e.to_string(), &mut blind),
                        Err(_) => self.lose_store(&silent(), &mut blind),
                    },
                    Ok(Err(e)) => self.lose_store(&e.to_string(), &mut blind),
                    Err(_) => self.lose_store(&silent(), &mut blind),
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(self.timing.poll) => {}
                }
            };
            self.see_store(&mut blind, &mut told_chat).await;
            // Someone held it before: this is a takeover, whether the
            // old holder died, froze, stopped, or was this name earlier.
            let took_over = lease.epoch > 1;
            let (ended, deposed) = self
                .lead_until_lost(lease, sent, took_over, &shutdown)
                .await;
            if ended == Ended::Shutdown {
                return;
            }
            if ended == Ended::RenewFailed {
                // Not renewed in time: a store out of reach, or this
                // process was frozen. Only the first is for chat, said
                // straight to it (the outbox is in the store), and before
                // the deposed daemon winds down, which may be slow then.
                let answers = tokio::time::timeout(self.timing.poll, self.store.lease()).await;
                if !matches!(answers, Ok(Ok(_))) {
                    self.lose_store("it did not answer the lease renewals in time", &mut blind);
                    told_chat = self
                        .say(format!(
                            "firebreak replica `{me}` cannot reach its store and has stopped acting: it can no longer prove it leads. Alerts are not acted on until a replica reaches the store again; check PostgreSQL."
                        ))
                        .await;
                }
            }
            if let Some(d) = deposed
                && tokio::time::timeout(WIND_DOWN, d.wait()).await.is_err()
            {
                tracing::warn!(replica = %me, "the deposed daemon did not wind down in time; following anyway");
            }
        }
    }

    /// Leads on `lease` (taken with a statement sent at `sent`) until it
    /// is lost or shutdown.
    async fn lead_until_lost(
        &mut self,
        lease: Lease,
        sent: Instant,
        took_over: bool,
        shutdown: &CancellationToken,
    ) -> (Ended, Option<Daemon>) {
        let me = lease.holder.clone();
        let epoch = lease.epoch;
        let lost = CancellationToken::new();
        let fenced = self
            .store
            .fenced(Fence::new(me.clone(), epoch, lost.clone()));
        // The fence's local deadline follows each renewal.
        let hold = {
            let (store, margin) = (fenced.clone(), self.timing.margin);
            move |valid_until: Instant| {
                if let Some(f) = store.fence() {
                    f.hold_until((valid_until - margin).into_std());
                }
            }
        };
        hold(sent + self.timing.lease);
        let m = crate::metrics::get();
        tracing::info!(replica = %me, epoch, took_over, "took the leader lease; leading");
        if took_over {
            m.failovers.with(&[]).inc();
            self.record_takeover(&fenced, epoch).await;
        }
        let stop = CancellationToken::new();
        let daemon = match (self.lead)(fenced, stop.clone()).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), replica = %me, "cannot start leading; giving the lease back");
                let _ = self.store.release_lease(&me, epoch).await;
                stop.cancel();
                // Leave the lease to another replica for a while.
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(self.timing.lease) => {}
                }
                let ended = if shutdown.is_cancelled() {
                    Ended::Shutdown
                } else {
                    Ended::Taken
                };
                return (ended, None);
            }
        };
        self.front.status.set(Role::Leading { epoch });

        let t = self.timing;
        let mut valid_until = sent + t.lease;
        let mut renew_at = sent + t.renew_every;
        let ended = loop {
            let deadline = valid_until - t.margin;
            tokio::select! {
                _ = shutdown.cancelled() => break Ended::Shutdown,
                _ = lost.cancelled() => break Ended::Fenced,
                _ = tokio::time::sleep_until(renew_at.min(deadline)) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                break Ended::RenewFailed;
            }
            let renewed = tokio::time::timeout(
                deadline - now,
                self.store
                    .renew_lease(&me, epoch, t.lease.as_millis() as i64),
            )
            .await;
            match renewed {
                Ok(Ok(Some(_))) => {
                    valid_until = now + t.lease;
                    hold(valid_until);
                    renew_at = now + t.renew_every;
                }
                Ok(Ok(None)) => break Ended::Taken,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, replica = %me, "cannot renew the leader lease; trying again");
                    renew_at = Instant::now() + t.poll;
                }
                Err(_) => break Ended::RenewFailed,
            }
        };

        if ended == Ended::Shutdown {
            stop.cancel();
            if let Err(e) = daemon.wait().await {
                tracing::error!(error = %e, "daemon shutdown failed");
            }
            match self.store.release_lease(&me, epoch).await {
                Ok(true) => tracing::info!(replica = %me, epoch, "released the leader lease"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot release the leader lease; it expires by itself")
                }
            }
            self.front.status.set(Role::Following { leader: None });
            return (ended, None);
        }
        // Nothing more of this epoch: no write, no chat message, no step.
        lost.cancel();
        stop.cancel();
        self.front.set(self.follower_routes.clone());
        self.front.status.set(Role::Following { leader: None });
        m.lease_lost.with(&[ended.reason()]).inc();
        tracing::error!(
            replica = %me, epoch, reason = ended.reason(),
            "lost the leader lease; stopped acting (what was in flight is left to the next leader)"
        );
        (ended, Some(daemon))
    }

    /// An entry on the timeline of each incident with a run going: which
    /// replica leads now; its daemon then resumes those runs.
    async fn record_takeover(&self, store: &Store, epoch: i64) {
        let runs = match store.unfinished_runs().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list runs going at takeover");
                return;
            }
        };
        let mut incidents: Vec<&str> = runs.iter().map(|(r, _)| r.incident.as_str()).collect();
        incidents.sort_unstable();
        incidents.dedup();
        for incident in incidents {
            let entry = TimelineEntry::new(
                incident,
                self.clock.now(),
                Kind::Takeover,
                By::Bot,
                About::default(),
                format!(
                    "replica {} took over as leader (lease epoch {epoch}); it resumes the runs left going",
                    self.front.status.me
                ),
            );
            if let Err(e) = store.append_timeline(&entry).await {
                tracing::warn!(error = %e, "cannot record the takeover");
            }
        }
    }

    fn lose_store(&self, why: &str, blind: &mut bool) {
        let why = crate::limits::head(why, 300).to_owned();
        if !*blind {
            tracing::error!(error = %why, "cannot reach the store: not leading, and cannot know who does");
            *blind = true;
        }
        crate::metrics::get().store_up.with(&[]).set(0.0);
        self.front.status.set(Role::Blind { why });
    }

    async fn see_store(&self, blind: &mut bool, told_chat: &mut bool) {
        crate::metrics::get().store_up.with(&[]).set(1.0);
        if *blind {
            tracing::info!("the store answers again");
            *blind = false;
        }
        if *told_chat {
            *told_chat = !self
                .say(format!(
                    "firebreak replica `{}` reaches its store again; a replica leads and acts within one lease ({}).",
                    self.front.status.me,
                    crate::human::span(self.timing.lease.as_millis() as i64)
                ))
                .await;
        }
    }

    /// Posts straight to chat, not through the outbox; true once posted.
    async fn say(&self, text: String) -> bool {
        let msg = crate::chat::ChatMessage {
            channel: self.channel.clone(),
            text,
            at: self.clock.now(),
            ..Default::default()
        };
        let out = crate::chat::Outgoing {
            msg: &msg,
            placement: crate::chat::Placement::TopLevel,
            image: None,
            key: None,
            retried: false,
        };
        match self.chat.send(out).await {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot say in chat that the store is out of reach");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_name_is_bounded_and_safe_in_chat() {
        assert_eq!(replica_name(Some(" fb-1 "), Some("h"), 7), "fb-1");
        assert_eq!(replica_name(Some("a`b <!here>"), None, 7), "a_b___here_");
        assert_eq!(replica_name(Some(&"x".repeat(300)), None, 7).len(), 64);
        assert_eq!(replica_name(None, Some("node-3\n"), 42), "node-3-42");
        assert_eq!(replica_name(Some("  "), None, 42), "firebreak-42");
    }

    #[test]
    fn a_leader_stops_before_its_lease_can_expire() {
        let t = Timing::new(Duration::from_secs(10));
        assert!(
            t.renew_every * 2 < t.lease - t.margin,
            "two renewals may fail first"
        );
        assert!(t.margin > Duration::ZERO);
        assert_eq!(t.poll, Duration::from_secs(1));
        assert_eq!(
            Timing::new(Duration::from_millis(500)).poll,
            Duration::from_millis(100)
        );
    }
}
