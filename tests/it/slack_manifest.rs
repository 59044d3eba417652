//! The Slack app manifests in `deploy/` ask for exactly the bot scopes the
//! code needs: every Web API method called in `src/` has its scope, and no
//! scope is there that nothing uses. Their request URLs are routes the bot
//! serves. A new Slack call without its scope fails here, not on the first
//! night the bot needs it.

use std::collections::BTreeSet;
use std::path::Path;

/// Slack's Web API methods firebreak may call, with the bot scopes each
/// needs (from Slack's method reference). A method the code calls that is
/// missing here fails the test, so adding a call means adding its scope.
const METHOD_SCOPES: &[(&str, &[&str])] = &[
    ("auth.test", &[]),
    // The app-level token's `connections:write`, not a bot scope.
    ("apps.connections.open", &[]),
    ("chat.postMessage", &["chat:write"]),
    ("chat.update", &["chat:write"]),
    (
        "conversations.history",
        &["channels:history", "groups:history"],
    ),
    ("conversations.list", &["channels:read", "groups:read"]),
    (
        "conversations.replies",
        &["channels:history", "groups:history"],
    ),
    ("files.completeUploadExternal", &["files:write"]),
    ("files.getUploadURLExternal", &["files:write"]),
    ("usergroups.users.list", &["usergroups:read"]),
];

/// What Slack sends the bot, the code that handles it, and its scope.
const INBOUND: &[(&str, &str, &str)] = &[
    (
        "/firebreak slash command",
        "\"/slack/commands\"",
        "commands",
    ),
    ("app_mention events", "\"app_mention\"", "app_mentions:read"),
    ("direct messages (message.im)", "Some(\"im\")", "im:history"),
];

const FAMILIES: &[&str] = &[
    "apps.",
    "auth.",
    "bookmarks.",
    "chat.",
    "conversations.",
    "dnd.",
    "files.",
    "pins.",
    "reactions.",
    "team.",
    "usergroups.",
    "users.",
    "views.",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
}

/// Slack method names in string literals of the chat adapters and the
/// inbound edge (`"chat.update"`), where every Slack call is made.
fn methods_called() -> BTreeSet<String> {
    let mut files = Vec::new();
    sources(&root().join("src/chat"), &mut files);
    sources(&root().join("src/inbound"), &mut files);
    let mut out = BTreeSet::new();
    for (_, text) in &files {
        for (i, _) in text.match_indices('"') {
            let rest = &text[i + 1..];
            let Some(end) = rest.find('"') else { continue };
            let lit = &rest[..end];
            let shaped = lit.contains('.')
                && lit.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
                && lit.chars().next().is_some_and(|c| c.is_ascii_lowercase());
            if shaped && FAMILIES.iter().any(|f| lit.starts_with(f)) {
                out.insert(lit.to_owned());
            }
        }
    }
    out
}

fn manifest(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("deploy").join(name)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn strings(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn needed_scopes() -> BTreeSet<String> {
    let called = methods_called();
    assert!(
        called.contains("chat.postMessage"),
        "the scan found no chat.postMessage: is it blind? {called:?}"
    );
    let mut need = BTreeSet::new();
    for m in &called {
        let Some((_, scopes)) = METHOD_SCOPES.iter().find(|(name, _)| name == m) else {
            panic!(
                "the code calls {m}, which has no scope in METHOD_SCOPES: look it up and add it (and to the manifests)"
            );
        };
        need.extend(scopes.iter().map(|s| (*s).to_owned()));
    }
    let inbound = std::fs::read_to_string(root().join("src/inbound/slack.rs")).unwrap();
    for (what, code, scope) in INBOUND {
        if inbound.contains(code) {
            need.insert((*scope).to_owned());
        } else {
            panic!(
                "src/inbound/slack.rs no longer handles {what}; drop {scope} from the manifests and INBOUND"
            );
        }
    }
    need
}

#[test]
fn both_manifests_ask_for_exactly_the_scopes_the_code_needs() {
    let need = needed_scopes();
    for name in [
        "slack-app-manifest.yaml",
        "slack-app-manifest.socket-mode.yaml",
    ] {
        let m = manifest(name);
        let got = strings(&m["oauth_config"]["scopes"]["bot"]);
        let missing: Vec<_> = need.difference(&got).collect();
        let unused: Vec<_> = got.difference(&need).collect();
        assert!(
            missing.is_empty() && unused.is_empty(),
            "{name}: missing scopes {missing:?}, scopes nothing uses {unused:?}"
        );
        let events = strings(&m["settings"]["event_subscriptions"]["bot_events"]);
        let want: BTreeSet<String> = ["app_mention", "message.im"].map(String::from).into();
        assert_eq!(events, want, "{name}: bot events");
        assert_eq!(m["settings"]["interactivity"]["is_enabled"], true, "{name}");
        let commands = m["features"]["slash_commands"]
            .as_array()
            .expect("slash_commands");
        assert_eq!(commands.len(), 1, "{name}");
        assert_eq!(commands[0]["command"], "/firebreak", "{name}");
    }
}

#[test]
fn the_http_manifest_points_at_routes_the_bot_serves_and_socket_mode_at_none() {
    let inbound = std::fs::read_to_string(root().join("src/inbound/slack.rs")).unwrap();
    let http = manifest("slack-app-manifest.yaml");
    assert_eq!(http["settings"]["socket_mode_enabled"], false);
    let urls = [
        &http["features"]["slash_commands"][0]["url"],
        &http["settings"]["event_subscriptions"]["request_url"],
        &http["settings"]["interactivity"]["request_url"],
    ];
    for u in urls {
        let u = u.as_str().expect("a request URL");
        let url = reqwest::Url::parse(u).unwrap();
        assert_eq!(url.scheme(), "https", "Slack calls HTTPS only: {u}");
        assert!(
            inbound.contains(&format!(".route(\"{}\"", url.path())),
            "{u}: the bot serves no route {}",
            url.path()
        );
    }
    let socket = manifest("slack-app-manifest.socket-mode.yaml");
    assert_eq!(socket["settings"]["socket_mode_enabled"], true);
    let text =
        std::fs::read_to_string(root().join("deploy/slack-app-manifest.socket-mode.yaml")).unwrap();
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert!(
        !body.contains("request_url") && !body.contains("url:"),
        "Socket Mode needs no request URL"
    );
}
