//! What people set on the control loop that must outlive the process
//! (a restart, or a takeover by another replica): automation paused, and
//! which firing alerts someone acknowledged. Without these a failover
//! would quietly resume automation a person had paused.

use sqlx::Row;

use super::{Result, Store, Write, q};
use crate::clock::Millis;

/// The one pause row's key.
const AUTOMATION: &str = "automation";

impl Store {
    /// Records that automation is paused, `by` whom (their label), why,
    /// since when.
    pub async fn save_pause(&self, by: &str, reason: &str, since: Millis) -> Result<()> {
        sqlx::query(
            "INSERT INTO pauses (id, by_label, reason, since) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET by_label = excluded.by_label,
                 reason = excluded.reason, since = excluded.since",
        )
        .bind(AUTOMATION)
        .bind(by)
        .bind(reason)
        .bind(since)
        .fenced(self)
        .await
        .map_err(q("save the pause"))?;
        Ok(())
    }

    /// Records that automation runs again.
    pub async fn clear_pause(&self) -> Result<()> {
        sqlx::query("DELETE FROM pauses WHERE id = $1")
            .bind(AUTOMATION)
            .fenced(self)
            .await
            .map_err(q("clear the pause"))?;
        Ok(())
    }

    /// The pause in force: (by, reason, since).
    pub async fn pause(&self) -> Result<Option<(String, String, Millis)>> {
        let row = sqlx::query("SELECT by_label, reason, since FROM pauses WHERE id = $1")
            .bind(AUTOMATION)
            .fetch_optional(&self.pool)
            .await
            .map_err(q("read the pause"))?;
        row.map(|r| {
            Ok((
                r.try_get(0).map_err(q("read the pause"))?,
                r.try_get(1).map_err(q("read the pause"))?,
                r.try_get(2).map_err(q("read the pause"))?,
            ))
        })
        .transpose()
    }

    /// Records that the firing alert `fingerprint` was acknowledged.
    pub async fn save_ack(&self, fingerprint: &str, by: &str, at: Millis) -> Result<()> {
        sqlx::query(
            "INSERT INTO acks (fingerprint, by_label, at) VALUES ($1, $2, $3)
             ON CONFLICT (fingerprint) DO NOTHING",
        )
        .bind(fingerprint)
        .bind(by)
        .bind(at)
        .fenced(self)
        .await
        .map_err(q("save an ack"))?;
        Ok(())
    }

    /// Forgets the ack of an alert that resolved (a new firing is a new
    /// question for people).
    pub async fn forget_ack(&self, fingerprint: &str) -> Result<()> {
        sqlx::query("DELETE FROM acks WHERE fingerprint = $1")
            .bind(fingerprint)
            .fenced(self)
            .await
            .map_err(q("forget an ack"))?;
        Ok(())
    }

    /// Every ack kept: (fingerprint, by, at).
    pub async fn acks(&self) -> Result<Vec<(String, String, Millis)>> {
        let rows = sqlx::query("SELECT fingerprint, by_label, at FROM acks ORDER BY at")
            .fetch_all(&self.pool)
            .await
            .map_err(q("read acks"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(q("read acks"))?,
                    r.try_get(1).map_err(q("read acks"))?,
                    r.try_get(2).map_err(q("read acks"))?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::backends;
    use super::*;

    #[tokio::test]
    async fn a_pause_and_acks_outlive_the_process() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            assert_eq!(s.pause().await.unwrap(), None);
            s.save_pause("ana (U1)", "failover drill", 5).await.unwrap();
            s.save_ack("00000000000000aa", "ana (U1)", 6).await.unwrap();
            s.save_ack("00000000000000bb", "bo (U2)", 7).await.unwrap();
            s.close().await;

            let s = Store::open(&db.url).await.unwrap();
            assert_eq!(
                s.pause().await.unwrap(),
                Some(("ana (U1)".into(), "failover drill".into(), 5))
            );
            s.forget_ack("00000000000000aa").await.unwrap();
            assert_eq!(
                s.acks().await.unwrap(),
                [("00000000000000bb".to_owned(), "bo (U2)".to_owned(), 7)]
            );
            s.clear_pause().await.unwrap();
            assert_eq!(s.pause().await.unwrap(), None);
        }
    }
}
