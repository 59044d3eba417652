//! The leader lease and the fence on a leader's writes.
//!
//! Replicas on one PostgreSQL store agree on one leader through a row of
//! `leases`: holder, epoch and expiry. It is taken and renewed with single
//! statements that read the database's clock, never a replica's, so two
//! replicas whose clocks disagree still agree on who holds it. Taking an
//! expired lease bumps the epoch.
//!
//! A leader's store is fenced ([`Store::fenced`]): each of its writes runs
//! in a transaction that first checks, and on PostgreSQL share-locks, the
//! lease row at its epoch. A takeover has to update that row, so it waits
//! for writes in flight to commit, and every later write of the old epoch
//! finds the row changed and fails with [`StoreError::Fenced`], which also
//! cancels the fence's `lost` token so the old leader stops acting.

use sqlx::Row;
use tokio_util::sync::CancellationToken;

use super::{Result, Store, StoreError, q};
use crate::clock::Millis;

/// The one lease replicas take turns at.
const LEADER: &str = "leader";

/// The lease as the store last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    pub epoch: i64,
    /// On the database's clock, like every time here.
    pub expires_at: Millis,
    pub taken_at: Millis,
}

/// What a fenced store writes as: the lease it holds.
#[derive(Debug)]
pub struct Fence {
    pub holder: String,
    pub epoch: i64,
    /// Cancelled by the first write the fence refuses, or by the replica
    /// when it stops leading.
    pub lost: CancellationToken,
    /// Until when, on this process's monotonic clock, the lease is surely
    /// still held (the holder moves it on at each renewal); `None`: no
    /// local deadline, the store decides alone.
    pub until: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Fence {
    pub fn new(holder: impl Into<String>, epoch: i64, lost: CancellationToken) -> Fence {
        Fence {
            holder: holder.into(),
            epoch,
            lost,
            until: std::sync::Mutex::new(None),
        }
    }

    /// Moves the local deadline on (after a renewal).
    pub fn hold_until(&self, until: std::time::Instant) {
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
    }

    /// Whether the lease is surely still this process's: not lost, and
    /// its local deadline not past. Checked right before each action, so
    /// a leader that was frozen past its lease (a pause, a partition)
    /// does not act on waking, before its renewal task has even run.
    pub fn holds(&self) -> bool {
        let until = *self.until.lock().unwrap_or_else(|e| e.into_inner());
        !self.lost.is_cancelled() && until.is_none_or(|u| std::time::Instant::now() < u)
    }

    /// A replica that has stopped leading writes nothing more, even while
    /// its lease has yet to expire in the store.
    pub(super) fn refuse_if_lost(&self) -> std::result::Result<(), Written> {
        if !self.holds() {
            return Err(Written::Fenced {
                holder: self.holder.clone(),
                epoch: self.epoch,
            });
        }
        Ok(())
    }
}

impl Store {
    /// The database's clock, in milliseconds, as SQL.
    fn db_now(&self) -> &'static str {
        if self.postgres {
            "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
        } else {
            "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
        }
    }

    /// The same store, with every write conditional on holding `fence`.
    pub fn fenced(&self, fence: Fence) -> Store {
        Store {
            fence: Some(std::sync::Arc::new(fence)),
            ..self.clone()
        }
    }

    /// The fence this store writes under, if any.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_deref()
    }

    /// Takes the lease for `holder` for `ttl_ms` if nobody holds it (it is
    /// new, expired or released). One statement: of replicas trying at
    /// once, one wins. `None` when someone else holds it.
    pub async fn take_lease(&self, holder: &str, ttl_ms: i64) -> Result<Option<Lease>> {
        let now = self.db_now();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO leases (name, holder, epoch, expires_at, taken_at)
             VALUES ($1, $2, 1, {now} + $3, {now})
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, epoch = leases.epoch + 1,
                 expires_at = excluded.expires_at, taken_at = excluded.taken_at
             WHERE leases.expires_at <= {now}
             RETURNING holder, epoch, expires_at, taken_at"
        )))
        .bind(LEADER)
        .bind(holder)
        .bind(ttl_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("take the lease"))?;
        row.map(|r| lease(&r)).transpose()
    }

    /// Extends a lease held at `epoch` by `ttl_ms` from now. `Ok(None)`
    /// when it is no longer held (expired, taken, released): the holder
    /// must stop acting.
    pub async fn renew_lease(
        &self,
        holder: &str,
        epoch: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>> {
        let now = self.db_now();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE leases SET expires_at = {now} + $1
             WHERE name = $2 AND holder = $3 AND epoch = $4 AND expires_at > {now}
             RETURNING holder, epoch, expires_at, taken_at"
        )))
        .bind(ttl_ms)
        .bind(LEADER)
        .bind(holder)
        .bind(epoch)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("renew the lease"))?;
        row.map(|r| lease(&r)).transpose()
    }

    /// Gives the lease up now, so another replica need not wait for it
    /// to expire (a clean shutdown).
    pub async fn release_lease(&self, holder: &str, epoch: i64) -> Result<bool> {
        let now = self.db_now();
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE leases SET expires_at = {now}
             WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > {now}"
        )))
        .bind(LEADER)
        .bind(holder)
        .bind(epoch)
        .execute(&self.pool)
        .await
        .map_err(q("release the lease"))?;
        Ok(r.rows_affected() == 1)
    }

    /// The lease row and the database's clock now: who leads, if its
    /// expiry is still ahead.
    pub async fn lease(&self) -> Result<(Option<Lease>, Millis)> {
        let now = self.db_now();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT holder, epoch, expires_at, taken_at, {now} FROM leases WHERE name = $1"
        )))
        .bind(LEADER)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("read the lease"))?;
        match row {
            Some(r) => Ok((Some(lease(&r)?), r.try_get(4).map_err(q("read the lease"))?)),
            None => {
                let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {now}")))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(q("read the database clock"))?;
                Ok((None, r.try_get(0).map_err(q("read the database clock"))?))
            }
        }
    }

    /// Inside a fenced write's transaction: the lease is still `fence`'s.
    /// On PostgreSQL the row is share-locked until the write commits, so
    /// a takeover (an update of the row) waits for it.
    pub(super) async fn check_fence(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        fence: &Fence,
    ) -> std::result::Result<(), Written> {
        let now = self.db_now();
        let lock = if self.postgres { " FOR SHARE" } else { "" };
        let held = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > {now}{lock}"
        )))
        .bind(LEADER)
        .bind(&fence.holder)
        .bind(fence.epoch)
        .fetch_optional(&mut **tx)
        .await
        .map_err(Written::Sql)?;
        if held.is_none() {
            fence.lost.cancel();
            return Err(Written::Fenced {
                holder: fence.holder.clone(),
                epoch: fence.epoch,
            });
        }
        Ok(())
    }
}

/// Why a write did not happen.
#[derive(Debug)]
pub(super) enum Written {
    Sql(sqlx::Error),
    Fenced { holder: String, epoch: i64 },
}

impl Written {
    pub(super) fn is_unique_violation(&self) -> bool {
        matches!(self, Written::Sql(e) if super::is_unique_violation(e))
    }
}

impl super::Failure for Written {
    fn into_store(self, what: &'static str) -> StoreError {
        match self {
            Written::Sql(source) => StoreError::Query { what, source },
            Written::Fenced { holder, epoch } => StoreError::Fenced {
                what,
                holder,
                epoch,
            },
        }
    }
}

impl From<sqlx::Error> for Written {
    fn from(e: sqlx::Error) -> Written {
        Written::Sql(e)
    }
}

fn lease(r: &sqlx::any::AnyRow) -> Result<Lease> {
    const WHAT: &str = "read the lease";
    Ok(Lease {
        holder: r.try_get(0).map_err(q(WHAT))?,
        epoch: r.try_get(1).map_err(q(WHAT))?,
        expires_at: r.try_get(2).map_err(q(WHAT))?,
        taken_at: r.try_get(3).map_err(q(WHAT))?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::backends;
    use super::*;
    use crate::run_state::{Outcome, RunState};
    use crate::store::RunRecord;

    fn run(id: &str, key: &str, at: Millis) -> RunRecord {
        RunRecord {
            id: id.into(),
            runbook: "move-event".into(),
            incident: "launch".into(),
            concurrency_key: key.into(),
            state: RunState::RUNNING,
            started_at: at,
            finished_at: None,
            error: None,
        }
    }

    #[tokio::test]
    async fn one_replica_holds_the_lease_until_it_expires_or_is_released() {
        for db in backends().await {
            let a = Store::open(&db.url).await.unwrap();
            let b = Store::open(&db.url).await.unwrap();
            assert_eq!(a.lease().await.unwrap().0, None);
            let first = a.take_lease("a", 60_000).await.unwrap().expect("free");
            assert_eq!((first.holder.as_str(), first.epoch), ("a", 1));
            assert_eq!(b.take_lease("b", 60_000).await.unwrap(), None, "{}", db.url);
            assert_eq!(
                a.take_lease("a", 60_000).await.unwrap(),
                None,
                "held, even by a"
            );
            let renewed = a.renew_lease("a", 1, 60_000).await.unwrap().expect("held");
            assert!(renewed.expires_at >= first.expires_at);
            assert_eq!(b.renew_lease("b", 1, 60_000).await.unwrap(), None);
            assert_eq!(
                a.renew_lease("a", 2, 60_000).await.unwrap(),
                None,
                "wrong epoch"
            );

            assert!(a.release_lease("a", 1).await.unwrap());
            assert_eq!(
                a.renew_lease("a", 1, 60_000).await.unwrap(),
                None,
                "released"
            );
            let second = b.take_lease("b", 1).await.unwrap().expect("released");
            assert_eq!((second.holder.as_str(), second.epoch), ("b", 2));
            let (now_held, db_now) = b.lease().await.unwrap();
            assert_eq!(now_held.unwrap().holder, "b");
            assert!(
                db_now > 1_600_000_000_000,
                "the database's clock in ms: {db_now}"
            );

            // A 1 ms lease is soon over without a word from its holder.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            assert_eq!(b.renew_lease("b", 2, 60_000).await.unwrap(), None);
            let third = a.take_lease("a", 60_000).await.unwrap().expect("expired");
            assert_eq!(third.epoch, 3);
        }
    }

    #[tokio::test]
    async fn of_replicas_taking_the_lease_at_once_one_wins() {
        for db in backends().await {
            let stores = futures_util::future::join_all((0..6).map(|_| Store::open(&db.url))).await;
            let takes = stores.iter().enumerate().map(|(i, s)| {
                let s = s.as_ref().unwrap();
                async move { s.take_lease(&format!("r{i}"), 60_000).await.unwrap() }
            });
            let won: Vec<Lease> = futures_util::future::join_all(takes)
                .await
                .into_iter()
                .flatten()
                .collect();
            assert_eq!(won.len(), 1, "{}: {won:?}", db.url);
        }
    }

    #[tokio::test]
    async fn a_deposed_leaders_writes_fail_and_say_it_lost_the_lease() {
        for db in backends().await {
            let store = Store::open(&db.url).await.unwrap();
            let old = store.take_lease("old", 1).await.unwrap().unwrap();
            let lost = CancellationToken::new();
            let deposed = store.fenced(Fence::new(old.holder.clone(), old.epoch, lost.clone()));
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let new = store.take_lease("new", 60_000).await.unwrap().unwrap();
            let leader = store.fenced(Fence::new(
                new.holder.clone(),
                new.epoch,
                CancellationToken::new(),
            ));

            let err = deposed
                .insert_run(&run("r-old", "launch", 1), "{}")
                .await
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::Fenced { holder, epoch: 1, .. } if holder == "old"),
                "{err}"
            );
            assert!(lost.is_cancelled(), "the old leader is told to stop");
            assert!(deposed.enqueue_outbox("#c", "{}", 1).await.is_err());
            assert!(store.runs().await.unwrap().is_empty(), "nothing written");
            assert_eq!(store.outbox_depth().await.unwrap(), 0);

            leader
                .insert_run(&run("r-new", "launch", 2), "{}")
                .await
                .unwrap();
            leader.enqueue_outbox("#c", "{}", 2).await.unwrap();
            assert_eq!(store.runs().await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn the_database_refuses_a_second_active_run_of_one_runbook_and_key() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            s.insert_run(&run("r1", "launch", 1), "{}").await.unwrap();
            let err = s
                .insert_run(&run("r2", "launch", 2), "{}")
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::RunActive { .. }), "{err}");
            s.insert_run(&run("r3", "other", 3), "{}").await.unwrap();
            s.finish_run("r1", Outcome::Succeeded, 4, None)
                .await
                .unwrap();
            s.insert_run(&run("r4", "launch", 5), "{}").await.unwrap();
        }
    }

    #[tokio::test]
    async fn upgrading_a_store_with_two_unfinished_runs_of_one_key_ends_the_older() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            // Back to schema 2, as two processes on one store could have
            // left it.
            for undo in [
                "DROP INDEX runs_newest",
                "DROP INDEX runs_by_runbook",
                "DROP INDEX runs_by_incident",
                "DROP INDEX checklist_runs_newest",
                "DROP INDEX checklist_runs_by_name",
                "DROP INDEX outbox_shows",
                "ALTER TABLE outbox DROP COLUMN shows",
                "ALTER TABLE outbox DROP COLUMN incident",
                "DELETE FROM schema_migrations WHERE version = 5",
                "DROP TABLE console_sessions",
                "DROP TABLE console_tokens",
                "DELETE FROM schema_migrations WHERE version = 4",
                "DROP INDEX runs_one_active",
                "DROP TABLE leases",
                "DROP TABLE forwarded",
                "DROP TABLE pauses",
                "DROP TABLE acks",
                "DELETE FROM schema_migrations WHERE version = 3",
            ] {
                sqlx::query(undo).execute(&s.pool).await.unwrap();
            }
            s.insert_run(&run("older", "launch", 1), "{}")
                .await
                .unwrap();
            s.insert_run(&run("newer", "launch", 2), "{}")
                .await
                .unwrap();
            s.insert_run(&run("alone", "other", 1), "{}").await.unwrap();
            s.close().await;

            let s = Store::open(&db.url).await.unwrap();
            let unfinished: Vec<String> = s
                .unfinished_runs()
                .await
                .unwrap()
                .into_iter()
                .map(|(r, _)| r.id)
                .collect();
            assert_eq!(unfinished, ["alone", "newer"], "{}", db.url);
            let older = s
                .runs()
                .await
                .unwrap()
                .into_iter()
                .find(|r| r.id == "older");
            let older = older.unwrap();
            assert_eq!(older.state, RunState::Ended(Outcome::Interrupted));
            assert!(older.error.unwrap().contains("schema 3"));
            assert!(s.take_lease("a", 1000).await.unwrap().is_some());
        }
    }
}
