//! `firebreak timeline`: the incidents in the store, or one incident's
//! review (terminal or Markdown).

use std::process::ExitCode;

use anyhow::Context;

use super::files::config_or_default;

/// `firebreak timeline`: reads the store given, else the one the config
/// names.
pub(crate) async fn timeline(
    incident: Option<&str>,
    format: Format,
    config: Option<&std::path::Path>,
    store: Option<&str>,
) -> anyhow::Result<ExitCode> {
    use firebreak::incident::Review;
    let mut config = config_or_default(config)?;
    if let Some(s) = store {
        config.store_url = store_url(s)?;
    }
    let store = firebreak::store::Store::open(&config.store_url)
        .await
        .with_context(|| format!("opening the store {}", config.store_url))?;
    let incidents = store.incidents().await?;
    let time = |at: firebreak::clock::Millis| {
        chrono::DateTime::from_timestamp_millis(at).map_or_else(
            || at.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
    };
    let Some(incident) = incident else {
        if incidents.is_empty() && format != Format::Json {
            println!("no incidents in {}", config.store_url);
        }
        let mut listed = Vec::new();
        for id in &incidents {
            let r = Review::new(id, store.timeline(id).await?);
            let first = r.entries.first().map_or(0, |e| e.at);
            let began = r.began.unwrap_or(first);
            if format == Format::Json {
                listed.push(serde_json::json!({
                    "incident": id,
                    "began": rfc3339(began),
                    "outcome": r.outcome(),
                }));
            } else {
                println!("{id}\t{}\t{}", time(began), r.outcome());
            }
        }
        store.close().await;
        if format == Format::Json {
            let out = serde_json::json!({"store": config.store_url, "incidents": listed});
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        return Ok(ExitCode::SUCCESS);
    };
    if !incidents.iter().any(|i| i == incident) {
        store.close().await;
        let known = if incidents.is_empty() {
            "there are none yet".to_owned()
        } else {
            format!("known: {}", incidents.join(", "))
        };
        eprintln!(
            "error: no incident {incident:?} in {}; {known}",
            config.store_url
        );
        return Ok(ExitCode::FAILURE);
    }
    let audience = store.audience(incident).await?;
    let review = Review::new(incident, store.timeline(incident).await?).with_audience(&audience);
    store.close().await;
    match format {
        Format::Markdown => print!("{}", review.markdown(&time)),
        Format::Text => print!("{}", review.text(&time)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&review.json(&rfc3339))?),
    }
    Ok(ExitCode::SUCCESS)
}

/// How `timeline` prints.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    Markdown,
    Json,
}

/// A moment as the JSON outputs write it (as the HTTP API does).
fn rfc3339(ms: firebreak::clock::Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// `--store`: a store URL as given, or a SQLite file, which must exist (a
/// mistyped path would otherwise open a new, empty store and say there
/// are no incidents).
fn store_url(s: &str) -> anyhow::Result<String> {
    if s.starts_with("sqlite:") || s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return Ok(s.to_owned());
    }
    anyhow::ensure!(
        std::path::Path::new(s).is_file(),
        "no store at {s}: the file does not exist"
    );
    Ok(format!("sqlite://{s}"))
}
