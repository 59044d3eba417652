//! Real exporter output: Debian's `prometheus-node-exporter` (installed by
//! `.ci/run`) on loopback; its /metrics must parse with no error, and agree
//! with `prometheus-parse` on the samples that crate reads faithfully.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{KillOnDrop, free_port};
use firebreak::labels::Labels;
use firebreak::source::exposition::{Format, parse_exposition, reference};

const BIN: &str = "prometheus-node-exporter";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_exporter_output_parses_and_agrees_with_prometheus_parse() {
    if Command::new(BIN).arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install Debian's {BIN} package (see .ci/run)"
        );
        eprintln!("SKIPPED: `{BIN}` is not installed (apt-get install {BIN})");
        return;
    }
    let port = free_port();
    let _exporter = KillOnDrop(
        Command::new(BIN)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node exporter"),
    );
    let http = firebreak::net::client().unwrap();
    let mut body = None;
    for _ in 0..100 {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            && r.status().is_success()
        {
            body = Some(r.text().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = body.expect("node exporter answered /metrics");
    assert_eq!(
        Format::detect(Some("text/plain; version=0.0.4"), &body),
        Format::Prometheus004
    );
    let exp = parse_exposition(&body, Format::Prometheus004).unwrap_or_else(|e| panic!("{e}"));
    let lines = body
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    assert!(lines > 100, "only {lines} sample lines");
    assert_eq!(exp.samples.len(), lines);
    assert!(exp.metadata.contains_key("node_cpu_seconds_total"));

    // Line by line, so one line prometheus-parse cannot read does not stop
    // the comparison of the rest; types come from the whole body.
    let types: String = body
        .lines()
        .filter(|l| l.starts_with("# TYPE"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut compared = 0;
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let text = format!("{types}{line}\n");
        let Some(theirs) = reference::parse(&text) else {
            continue;
        };
        let mut ours: Vec<(Labels, f64)> = parse_exposition(&text, Format::Prometheus004)
            .unwrap()
            .samples
            .into_iter()
            .map(|s| (s.labels, s.value))
            .collect();
        reference::normalise(&mut ours);
        let bits = |v: &[(Labels, f64)]| -> Vec<(Labels, u64)> {
            v.iter()
                .map(|(l, x)| (l.clone(), if x.is_nan() { 1 } else { x.to_bits() }))
                .collect()
        };
        assert_eq!(bits(&ours), bits(&theirs), "{line}");
        compared += 1;
    }
    eprintln!("compared {compared} of {lines} node exporter samples with prometheus-parse");
    assert!(compared * 2 > lines, "only {compared} of {lines} compared");
}
