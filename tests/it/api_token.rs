//! The daemon wires `server.token_secret` to the HTTP API: pushes and
//! reads want the bearer token, probes and metrics do not.

use firebreak::config::{Config, SecretSource};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_token_guards_the_api_of_a_running_daemon() {
    firebreak::net::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("api-token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let mut config = Config::for_simulator("127.0.0.1:9");
    config.scrape.clear();
    config.server.listen = Some("127.0.0.1:0".parse().unwrap());
    config.server.token_secret = Some("api".into());
    config.secrets.insert(
        "api".into(),
        SecretSource::File(token_file.display().to_string()),
    );
    let (daemon, stop) = crate::common::start_daemon(config, Box::new(std::io::sink())).await;
    let base = format!("http://{}", daemon.http_addr.unwrap());
    let http = firebreak::net::client().unwrap();
    let alert = r#"[{"labels":{"alertname":"Drill","event":"drill"}}]"#;

    let push = |token: Option<&'static str>| {
        let mut r = http
            .post(format!("{base}/api/v2/alerts"))
            .header("content-type", "application/json")
            .body(alert);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(push(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(push(Some("wrong")).await.unwrap().status().as_u16(), 401);
    // The file's trailing newline is not part of the token.
    assert_eq!(push(Some("s3cret")).await.unwrap().status().as_u16(), 200);
    let get = |path: &str| http.get(format!("{base}{path}")).send();
    assert_eq!(get("/api/v1/alerts").await.unwrap().status().as_u16(), 401);
    for open in ["/-/healthy", "/-/ready", "/metrics"] {
        assert_eq!(get(open).await.unwrap().status().as_u16(), 200, "{open}");
    }
    stop.cancel();
    daemon.wait().await.unwrap();
}
