//! Chat: what people see. Messages are rendered here, written to the
//! durable outbox in the store, and delivered in order by one sender task
//! through an adapter (the console now; Slack arrives with the chat issue).

pub mod console;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Millis};
use crate::store::{Store, StoreError};

/// What a message is about, so adapters can style it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Firing,
    Resolved,
    RunStarted,
    Step,
    StepFailed,
    RunFinished,
    RunFailed,
    Note,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub channel: String,
    /// Messages of one incident form one thread.
    pub incident: Option<String>,
    pub kind: Kind,
    pub text: String,
    pub at: Millis,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChatError(pub String);

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One chat system. `post` must be safe to retry: the outbox retries a
/// message until the adapter accepts it.
pub trait ChatAdapter: Send + Sync {
    fn post<'a>(&'a self, msg: &'a ChatMessage) -> BoxFut<'a, Result<(), ChatError>>;
}

/// The writing side of the outbox: cheap to clone, shared by every task
/// that talks to people.
#[derive(Clone)]
pub struct Outbox {
    store: Store,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(store: Store) -> Self {
        Outbox {
            store,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Durably queues a message. There is no in-memory queue to fill up:
    /// the message is in the store when this returns, and the sender picks
    /// it up in order.
    pub async fn post(&self, msg: &ChatMessage) -> Result<(), StoreError> {
        let json = serde_json::to_string(msg).map_err(|e| StoreError::Corrupt {
            what: "chat message",
            detail: e.to_string(),
        })?;
        self.store
            .enqueue_outbox(&msg.channel, &json, msg.at)
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Delivers queued messages in order until shutdown, then flushes what
    /// is left for at most `flush_deadline`. A failing adapter is retried
    /// with capped exponential backoff; later messages wait behind the
    /// failed one so order is kept.
    pub async fn deliver(
        self,
        adapter: Arc<dyn ChatAdapter>,
        clock: Clock,
        shutdown: CancellationToken,
        flush_deadline: Duration,
    ) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let delivered = self.deliver_pending(&*adapter, &clock).await;
            let wait = match delivered {
                Ok(()) => {
                    backoff = Duration::from_millis(200);
                    Duration::from_secs(1)
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "chat delivery failed; will retry");
                    let w = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    w
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        match tokio::time::timeout(flush_deadline, self.deliver_pending(&*adapter, &clock)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "chat messages left undelivered at shutdown; they stay in the outbox")
            }
            Err(_) => tracing::warn!(
                "chat flush deadline passed; undelivered messages stay in the outbox"
            ),
        }
    }

    async fn deliver_pending(
        &self,
        adapter: &dyn ChatAdapter,
        clock: &Clock,
    ) -> Result<(), String> {
        loop {
            let batch = self
                .store
                .pending_outbox(100)
                .await
                .map_err(|e| e.to_string())?;
            if batch.is_empty() {
                return Ok(());
            }
            for row in batch {
                let msg: ChatMessage = match serde_json::from_str(&row.payload_json) {
                    Ok(m) => m,
                    Err(e) => {
                        // A row we cannot read must not block the rest
                        // forever: log it loudly and mark it handled.
                        tracing::error!(seq = row.seq, error = %e, "unreadable outbox row skipped");
                        self.store
                            .mark_sent(row.seq, clock.now())
                            .await
                            .map_err(|e| e.to_string())?;
                        continue;
                    }
                };
                match adapter.post(&msg).await {
                    Ok(()) => self
                        .store
                        .mark_sent(row.seq, clock.now())
                        .await
                        .map_err(|e| e.to_string())?,
                    Err(e) => {
                        self.store
                            .mark_attempt_failed(row.seq)
                            .await
                            .map_err(|e| e.to_string())?;
                        return Err(e.to_string());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Fails the first `fail` posts, then records.
    struct Flaky {
        fail: AtomicUsize,
        got: Mutex<Vec<String>>,
    }

    impl ChatAdapter for Flaky {
        fn post<'a>(&'a self, msg: &'a ChatMessage) -> BoxFut<'a, Result<(), ChatError>> {
            Box::pin(async move {
                if self.fail.load(Ordering::SeqCst) > 0 {
                    self.fail.fetch_sub(1, Ordering::SeqCst);
                    return Err(ChatError("503".into()));
                }
                self.got.lock().unwrap().push(msg.text.clone());
                Ok(())
            })
        }
    }

    fn msg(text: &str) -> ChatMessage {
        ChatMessage {
            channel: "#c".into(),
            incident: None,
            kind: Kind::Note,
            text: text.into(),
            at: 0,
        }
    }

    // Real time: sqlx's pool timeouts fire at once under paused time. The
    // backoff is 200ms, 400ms, 800ms, so this takes about 1.5s.
    #[tokio::test]
    async fn failures_are_retried_in_order_and_nothing_is_lost() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let outbox = Outbox::new(store.clone());
        for t in ["one", "two", "three"] {
            outbox.post(&msg(t)).await.unwrap();
        }
        let adapter = Arc::new(Flaky {
            fail: AtomicUsize::new(3),
            got: Mutex::new(vec![]),
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(outbox.clone().deliver(
            adapter.clone(),
            Clock::scaled(0, 1.0),
            shutdown.clone(),
            Duration::from_secs(1),
        ));
        for _ in 0..200 {
            if adapter.got.lock().unwrap().len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(*adapter.got.lock().unwrap(), ["one", "two", "three"]);
        assert!(store.pending_outbox(10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn undelivered_messages_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("o.db").display());
        let store = Store::open(&url).await.unwrap();
        Outbox::new(store.clone()).post(&msg("kept")).await.unwrap();
        store.close().await;
        let store = Store::open(&url).await.unwrap();
        let adapter = Arc::new(Flaky {
            fail: AtomicUsize::new(0),
            got: Mutex::new(vec![]),
        });
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        Outbox::new(store)
            .deliver(
                adapter.clone(),
                Clock::system(),
                shutdown,
                Duration::from_secs(5),
            )
            .await;
        assert_eq!(*adapter.got.lock().unwrap(), ["kept"]);
    }
}
