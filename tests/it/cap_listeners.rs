//! The shipped `cap-listeners` runbook inside `firebreak run`, against a
//! `firebreak sim` whose event never moved: at 18:13 the main room is past
//! 90% of what it can serve, `RoomSaturating` fires, the bot caps the room
//! at 95% of its capacity and verifies the room stopped saturating.

use crate::common::{eventually, get_json, run_ended, start_bot, start_sim, stop_bot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturating_room_is_capped_and_holds() {
    let (_sim, sim_addr) = start_sim(&["--speed", "1", "--from", "13m"]);
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    // Only this runbook: the move would otherwise take the event away first.
    let books = dir.path().join("runbooks");
    std::fs::create_dir(&books).unwrap();
    std::fs::copy(
        format!("{root}/runbooks/cap-listeners.yaml"),
        books.join("cap-listeners.yaml"),
    )
    .unwrap();
    let db = dir.path().join("fb.db");
    let bot = start_bot(
        dir.path(),
        &format!(
            "sources:\n  scrape:\n    - name: sim\n      url: http://{sim_addr}/metrics\n      interval: 1s\n      timeout: 1s\nrules:\n  paths: ['{root}/alerts']\nrunbooks:\n  paths: ['{}']\ntargets:\n  platform: {{url: 'http://{sim_addr}'}}\nstore:\n  url: sqlite://{}\nchat:\n  channel: '#test'\n",
            books.display(),
            db.display()
        ),
    );
    // Utilisation is past 0.9 from the start; the group evaluates every
    // 15s and the rule needs `for: 30s`.
    let http = firebreak::net::client().unwrap();
    let cap = eventually(90, || async {
        let v = get_json(&http, &format!("http://{sim_addr}/api/v1/rooms/main")).await?;
        v["room"]["listener_cap"].as_u64()
    })
    .await;
    let ended = run_ended(&db, "cap-listeners", 60).await;
    let (_, out, err) = stop_bot(bot);
    assert_eq!(
        cap,
        Some(494_000),
        "95% of the main room's 520,000\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert_eq!(ended.as_deref(), Some("succeeded"), "{out}\n{err}");
    assert!(out.contains("• RoomSaturating [critical]"), "{out}");
    assert!(
        out.contains("Capped room main at 494000 listeners"),
        "{out}"
    );
    assert!(out.contains("`holding` (wait)"), "{out}");

    let room = get_json(&http, &format!("http://{sim_addr}/api/v1/rooms/main"))
        .await
        .unwrap();
    assert!(room["room"]["crashed_at"].is_null(), "{room}");
}
