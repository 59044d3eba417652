//! `firebreak console-token`: issue, list and revoke the tokens people
//! sign in to the web console with. A token is shown once, when issued;
//! the store keeps only its digest.

use std::process::ExitCode;

use anyhow::Context;

use super::files::config_or_default;
use firebreak::store::Store;

/// What to do with tokens.
pub(crate) enum Action<'a> {
    Add { user: &'a str, name: &'a str },
    List,
    Revoke { id: &'a str },
}

pub(crate) async fn console_token(
    action: Action<'_>,
    config: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let config = config_or_default(config)?;
    let store = Store::open(&config.store_url)
        .await
        .with_context(|| format!("opening the store {}", config.store_url))?;
    let now = chrono::Utc::now().timestamp_millis();
    let code = match action {
        Action::Add { user, name } => {
            let user = user.trim();
            if !firebreak::roles::is_user_id(user) {
                anyhow::bail!(
                    "{user:?} is not a chat user id; a token signs in as the id `chat.roles` names (Slack's member id, like U024BE7LH)"
                );
            }
            if config.chat.roles.resolve(user, &[]).is_none() {
                eprintln!(
                    "note: {user} has no role under chat.roles in this config, so the token signs in to nothing until one is given"
                );
            }
            let (secret, token) =
                firebreak::api::console::issue_token(&store, user, name, now).await?;
            eprintln!(
                "token {} for {} ({}); it is shown once, here. Sign in at the console's /signin with:",
                token.id, token.name, token.user
            );
            println!("{secret}");
            ExitCode::SUCCESS
        }
        Action::List => {
            let tokens = store.console_tokens().await?;
            if tokens.is_empty() {
                println!("no console tokens in {}", config.store_url);
            }
            for t in tokens {
                let when = |ms: i64| {
                    chrono::DateTime::from_timestamp_millis(ms)
                        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
                        .unwrap_or_default()
                };
                println!(
                    "{}\t{}\t{}\tissued {}{}",
                    t.id,
                    t.user,
                    t.name,
                    when(t.created_at),
                    t.revoked_at
                        .map(|r| format!("\trevoked {}", when(r)))
                        .unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Action::Revoke { id } => {
            if store.revoke_console_token(id.trim(), now).await? {
                println!("revoked {id}; its sessions are signed out");
                ExitCode::SUCCESS
            } else {
                eprintln!("no live token {id:?}; `firebreak console-token list` shows them");
                ExitCode::from(1)
            }
        }
    };
    store.close().await;
    Ok(code)
}
