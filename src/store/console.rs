//! The console's people: sign-in tokens issued to named people, and the
//! sessions a browser holds after signing in with one.
//!
//! Only SHA-256 digests of tokens and session secrets are kept, so a copy
//! of the store signs nobody in. These rows are not the leader's
//! decisions: any replica writes them straight to the pool, unfenced, so
//! a person can sign in at whichever replica a load balancer picks.

use sqlx::Row;

use super::{Result, Store, q};
use crate::clock::Millis;

/// A token as listed: everything but its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleToken {
    /// Short and public, for listing and revoking.
    pub id: String,
    /// The chat user id it signs in as (roles come from `chat.roles`).
    pub user: String,
    pub name: String,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// A signed-in browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSession {
    pub user: String,
    pub name: String,
    pub token_id: String,
    pub expires_at: Millis,
}

const TOKEN_COLUMNS: &str = "id, user_id, name, created_at, revoked_at";

fn token_row(r: &sqlx::any::AnyRow) -> Result<ConsoleToken> {
    let e = || q("read a console token");
    Ok(ConsoleToken {
        id: r.try_get(0).map_err(e())?,
        user: r.try_get(1).map_err(e())?,
        name: r.try_get(2).map_err(e())?,
        created_at: r.try_get(3).map_err(e())?,
        revoked_at: r.try_get(4).map_err(e())?,
    })
}

impl Store {
    /// Keeps a new token's digest for `user`.
    pub async fn add_console_token(&self, t: &ConsoleToken, digest: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_tokens (id, digest, user_id, name, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&t.id)
        .bind(digest)
        .bind(&t.user)
        .bind(&t.name)
        .bind(t.created_at)
        .execute(&self.pool)
        .await
        .map_err(q("add a console token"))?;
        Ok(())
    }

    /// Every token, newest first, revoked ones included.
    pub async fn console_tokens(&self) -> Result<Vec<ConsoleToken>> {
        // Only the constant column list is spliced in.
        let sql =
            format!("SELECT {TOKEN_COLUMNS} FROM console_tokens ORDER BY created_at DESC, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(q("list console tokens"))?;
        rows.iter().map(token_row).collect()
    }

    /// The live token whose digest is `digest`, if any.
    pub async fn console_token_by_digest(&self, digest: &str) -> Result<Option<ConsoleToken>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM console_tokens WHERE digest = $1 AND revoked_at IS NULL"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(digest)
            .fetch_optional(&self.pool)
            .await
            .map_err(q("look up a console token"))?;
        row.as_ref().map(token_row).transpose()
    }

    /// Revokes token `id` and ends the sessions it opened. False when no
    /// live token has that id.
    pub async fn revoke_console_token(&self, id: &str, at: Millis) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE console_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(q("revoke a console token"))?;
        sqlx::query("DELETE FROM console_sessions WHERE token_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(q("end a revoked token's sessions"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Opens a session whose secret has digest `digest`.
    pub async fn open_console_session(
        &self,
        digest: &str,
        s: &ConsoleSession,
        at: Millis,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_sessions (digest, user_id, name, token_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(digest)
        .bind(&s.user)
        .bind(&s.name)
        .bind(&s.token_id)
        .bind(at)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await
        .map_err(q("open a console session"))?;
        Ok(())
    }

    /// The session with digest `digest` if it has not expired at `now`
    /// and its token still stands.
    pub async fn console_session(
        &self,
        digest: &str,
        now: Millis,
    ) -> Result<Option<ConsoleSession>> {
        let row = sqlx::query(
            "SELECT s.user_id, s.name, s.token_id, s.expires_at FROM console_sessions s
             JOIN console_tokens t ON t.id = s.token_id AND t.revoked_at IS NULL
             WHERE s.digest = $1 AND s.expires_at > $2",
        )
        .bind(digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("look up a console session"))?;
        row.map(|r| {
            Ok(ConsoleSession {
                user: r.try_get(0).map_err(q("read a console session"))?,
                name: r.try_get(1).map_err(q("read a console session"))?,
                token_id: r.try_get(2).map_err(q("read a console session"))?,
                expires_at: r.try_get(3).map_err(q("read a console session"))?,
            })
        })
        .transpose()
    }

    /// Ends one session (signing out), and forgets every expired one.
    pub async fn close_console_session(&self, digest: &str, now: Millis) -> Result<()> {
        sqlx::query("DELETE FROM console_sessions WHERE digest = $1 OR expires_at <= $2")
            .bind(digest)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(q("close a console session"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::backends;

    fn token(id: &str, user: &str) -> ConsoleToken {
        ConsoleToken {
            id: id.into(),
            user: user.into(),
            name: "ana".into(),
            created_at: 10,
            revoked_at: None,
        }
    }

    #[tokio::test]
    async fn sessions_live_until_they_expire_or_their_token_is_revoked() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            s.add_console_token(&token("t1", "U1"), "d1").await.unwrap();
            s.add_console_token(&token("t2", "U2"), "d2").await.unwrap();
            // One digest, one token.
            assert!(s.add_console_token(&token("t3", "U3"), "d1").await.is_err());
            assert_eq!(
                s.console_token_by_digest("d1").await.unwrap().unwrap().user,
                "U1"
            );
            assert_eq!(s.console_token_by_digest("nope").await.unwrap(), None);

            let session = |token_id: &str, expires_at| ConsoleSession {
                user: "U1".into(),
                name: "ana".into(),
                token_id: token_id.into(),
                expires_at,
            };
            s.open_console_session("s1", &session("t1", 100), 10)
                .await
                .unwrap();
            s.open_console_session("s2", &session("t2", 100), 10)
                .await
                .unwrap();
            assert_eq!(
                s.console_session("s1", 50).await.unwrap(),
                Some(session("t1", 100))
            );
            assert_eq!(s.console_session("s1", 100).await.unwrap(), None, "expired");

            assert!(s.revoke_console_token("t1", 20).await.unwrap());
            assert!(!s.revoke_console_token("t1", 21).await.unwrap(), "once");
            assert_eq!(s.console_session("s1", 50).await.unwrap(), None);
            assert_eq!(s.console_token_by_digest("d1").await.unwrap(), None);
            let listed = s.console_tokens().await.unwrap();
            assert_eq!(listed.len(), 2);
            assert_eq!(
                listed.iter().find(|t| t.id == "t1").unwrap().revoked_at,
                Some(20)
            );

            s.close_console_session("s2", 50).await.unwrap();
            assert_eq!(s.console_session("s2", 50).await.unwrap(), None);
            s.close().await;
        }
    }
}
