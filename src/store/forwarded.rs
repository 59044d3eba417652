//! Alerts pushed to a follower, waiting for the leader to take them.
//!
//! A follower reads a push as the leader would (so a bad one is refused to
//! its sender at once) and keeps the body here; the leader reads it again
//! and queues it like its own pushes. Taking one twice (a leader that
//! stopped between queueing and deleting) is harmless: the same alert
//! pushed twice is one alert.

use sqlx::Row;

use super::{Result, Store, Write, q};
use crate::clock::Millis;

/// One push as a follower received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardedPush {
    pub id: String,
    pub received_at: Millis,
    /// `webhook` or `api_v2`: which reader the body is for.
    pub endpoint: String,
    pub body: String,
}

impl Store {
    /// Keeps a push `from` a follower for the leader.
    pub async fn forward_push(
        &self,
        from: &str,
        endpoint: &str,
        body: &str,
        at: Millis,
    ) -> Result<()> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sqlx::query(
            "INSERT INTO forwarded (id, received_at, endpoint, body) VALUES ($1, $2, $3, $4)",
        )
        .bind(format!("{at}-{from}-{n}"))
        .bind(at)
        .bind(endpoint)
        .bind(body)
        .fenced(self)
        .await
        .map_err(q("forward a push"))?;
        Ok(())
    }

    /// The oldest `limit` rows for `endpoints` not yet taken.
    pub async fn forwarded_pushes(
        &self,
        endpoints: &[&str],
        limit: i64,
    ) -> Result<Vec<ForwardedPush>> {
        let places: Vec<String> = (0..endpoints.len())
            .map(|i| format!("${}", i + 2))
            .collect();
        // Only placeholders are spliced in.
        let sql = format!(
            "SELECT id, received_at, endpoint, body FROM forwarded WHERE endpoint IN ({}) ORDER BY received_at, id LIMIT $1",
            places.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit);
        for e in endpoints {
            query = query.bind(*e);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(q("list forwarded pushes"))?;
        rows.iter()
            .map(|r| {
                Ok(ForwardedPush {
                    id: r.try_get(0).map_err(q("read forwarded push"))?,
                    received_at: r.try_get(1).map_err(q("read forwarded push"))?,
                    endpoint: r.try_get(2).map_err(q("read forwarded push"))?,
                    body: r.try_get(3).map_err(q("read forwarded push"))?,
                })
            })
            .collect()
    }

    /// Deletes a forwarded push the leader has queued.
    pub async fn took_forwarded(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM forwarded WHERE id = $1")
            .bind(id)
            .fenced(self)
            .await
            .map_err(q("take a forwarded push"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::backends;
    use super::*;

    #[tokio::test]
    async fn pushes_wait_in_order_until_taken() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            s.forward_push("f1", "webhook", "{\"b\":2}", 20)
                .await
                .unwrap();
            s.forward_push("f2", "api_v2", "[1]", 10).await.unwrap();
            s.forward_push("f1", "webhook", "{\"b\":2}", 20)
                .await
                .unwrap();
            s.forward_push("f1", "slack", "{}", 5).await.unwrap();
            let all = s
                .forwarded_pushes(&["webhook", "api_v2"], 10)
                .await
                .unwrap();
            let seen: Vec<(&str, Millis)> = all
                .iter()
                .map(|p| (p.endpoint.as_str(), p.received_at))
                .collect();
            assert_eq!(seen, [("api_v2", 10), ("webhook", 20), ("webhook", 20)]);
            s.took_forwarded(&all[0].id).await.unwrap();
            assert_eq!(
                s.forwarded_pushes(&["webhook", "api_v2"], 1).await.unwrap(),
                [all[1].clone()]
            );
            assert_eq!(s.forwarded_pushes(&["slack"], 9).await.unwrap().len(), 1);
        }
    }
}
