//! What people set on the control loop that must outlive the process
//! (a restart, or a takeover by another replica): automation paused, and
//! which firing alerts someone acknowledged. Without these a failover
//! would quietly resume automation a person had paused.

use std::fmt::Write as _;

use sqlx::Row;

use super::{Result, Store, Write, q};
use crate::clock::Millis;

/// Acks written by one statement: well under SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters.
pub const ACKS_PER_WRITE: usize = 500;

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

    /// Records that the firing alerts `fingerprints` were acknowledged,
    /// [`ACKS_PER_WRITE`] to a statement: one ack of a storm's incident
    /// takes thousands of alerts, and a write each held the control loop
    /// (and every command behind it) for as many commits.
    pub async fn save_acks(&self, fingerprints: &[String], by: &str, at: Millis) -> Result<()> {
        for chunk in fingerprints.chunks(ACKS_PER_WRITE) {
            let mut sql = String::from("INSERT INTO acks (fingerprint, by_label, at) VALUES ");
            for i in 0..chunk.len() {
                // Only placeholders are spliced in.
                let _ = write!(
                    sql,
                    "{}(${}, $1, $2)",
                    if i == 0 { "" } else { ", " },
                    i + 3
                );
            }
            sql.push_str(" ON CONFLICT (fingerprint) DO NOTHING");
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(by).bind(at);
            for fp in chunk {
                insert = insert.bind(fp.as_str());
            }
            insert.fenced(self).await.map_err(q("save acks"))?;
        }
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
            s.save_acks(&["00000000000000aa".into()], "ana (U1)", 6)
                .await
                .unwrap();
            s.save_acks(&["00000000000000bb".into()], "bo (U2)", 7)
                .await
                .unwrap();
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

    #[tokio::test]
    async fn a_storms_acks_are_kept_in_a_few_writes_and_once_each() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            let n = 2 * ACKS_PER_WRITE + 7;
            let fps: Vec<String> = (0..n).map(|i| format!("{i:016x}")).collect();
            s.save_acks(&fps, "ana (U1)", 5).await.unwrap();
            // Acked again (by someone else, later): the first ack stands.
            s.save_acks(&fps[..3], "bo (U2)", 9).await.unwrap();
            let acks = s.acks().await.unwrap();
            assert_eq!(acks.len(), n, "{}", db.url);
            assert!(acks.iter().all(|(_, by, at)| by == "ana (U1)" && *at == 5));
            s.save_acks(&[], "ana (U1)", 5).await.unwrap();
        }
    }
}
