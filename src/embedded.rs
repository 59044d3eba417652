//! The alert rules and runbooks compiled into the binary, so `firebreak
//! demo` runs on a fresh machine with no files. They are the files under
//! `alerts/` and `runbooks/`; a test keeps this list and the directories
//! in step.

pub const ALERT_FILES: &[(&str, &str)] = &[(
    "alerts/live-event.rules.yml",
    include_str!("../alerts/live-event.rules.yml"),
)];

pub const RUNBOOK_FILES: &[(&str, &str)] = &[
    (
        "runbooks/cap-listeners.yaml",
        include_str!("../runbooks/cap-listeners.yaml"),
    ),
    (
        "runbooks/join-failures.yaml",
        include_str!("../runbooks/join-failures.yaml"),
    ),
    (
        "runbooks/launch-readiness.yaml",
        include_str!("../runbooks/launch-readiness.yaml"),
    ),
    (
        "runbooks/move-to-secondary-room.yaml",
        include_str!("../runbooks/move-to-secondary-room.yaml"),
    ),
    (
        "runbooks/mute-feedback-speaker.yaml",
        include_str!("../runbooks/mute-feedback-speaker.yaml"),
    ),
    (
        "runbooks/pace-joins.yaml",
        include_str!("../runbooks/pace-joins.yaml"),
    ),
];

/// The runbooks' tests, so the `runbook` checks of a checklist can run
/// them with nothing on disk.
pub const RUNBOOK_TEST_FILES: &[(&str, &str)] = &[
    (
        "runbooks/tests/cap-listeners.test.yaml",
        include_str!("../runbooks/tests/cap-listeners.test.yaml"),
    ),
    (
        "runbooks/tests/join-failures.test.yaml",
        include_str!("../runbooks/tests/join-failures.test.yaml"),
    ),
    (
        "runbooks/tests/move-to-secondary-room.test.yaml",
        include_str!("../runbooks/tests/move-to-secondary-room.test.yaml"),
    ),
    (
        "runbooks/tests/mute-feedback-speaker.test.yaml",
        include_str!("../runbooks/tests/mute-feedback-speaker.test.yaml"),
    ),
    (
        "runbooks/tests/pace-joins.test.yaml",
        include_str!("../runbooks/tests/pace-joins.test.yaml"),
    ),
];

pub fn owned(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> &'static std::path::Path {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    fn on_disk(dir: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
            .filter(|p| !p.file_name().unwrap().to_string_lossy().contains("test"))
            .map(|p| {
                (
                    format!("{dir}/{}", p.file_name().unwrap().to_string_lossy()),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn embedded_files_are_the_files_on_disk() {
        let mut a = owned(ALERT_FILES);
        a.sort();
        assert_eq!(
            a,
            on_disk("alerts"),
            "update src/embedded.rs to match alerts/"
        );
        let mut r = owned(RUNBOOK_FILES);
        r.sort();
        assert_eq!(
            r,
            on_disk("runbooks"),
            "update src/embedded.rs to match runbooks/"
        );
        let mut t = owned(RUNBOOK_TEST_FILES);
        t.sort();
        let mut disk: Vec<(String, String)> = std::fs::read_dir(root().join("runbooks/tests"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                (
                    format!(
                        "runbooks/tests/{}",
                        p.file_name().unwrap().to_string_lossy()
                    ),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        disk.sort();
        assert_eq!(t, disk, "update src/embedded.rs to match runbooks/tests/");
    }
}
