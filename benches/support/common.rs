//! What the benches share: knobs from the environment, percentiles, and
//! fresh PostgreSQL databases.

/// The environment variable `name` parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Nearest-rank percentile of sorted values.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A fresh, empty database `name` on the server at `admin` (dropped
/// first if a earlier run left it); its URL.
#[allow(dead_code)]
pub async fn fresh_postgres(admin: &str, name: &str) -> anyhow::Result<String> {
    use sqlx::any::{AnyPoolOptions, install_default_drivers};
    install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(admin)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&pool)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await?;
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}
