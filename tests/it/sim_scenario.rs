//! Scenario files: the shipped one loads, broken ones report every error
//! with its location.

use firebreak::sim::Scenario;

#[test]
fn builtin_scenario_is_the_2023_launch() {
    let s = Scenario::builtin();
    assert_eq!(s.start, 1_684_962_000_000, "2023-05-24T21:00:00Z, T-60m");
    assert_eq!(s.scheduled_start, 1_684_965_600_000, "18:00 ET");
    assert_eq!(s.end - s.start, 100 * 60_000);
    assert_eq!(s.event.secondary_account, "cohost");
    assert_eq!(s.reference.listeners_after, 275_000);
}

#[test]
fn two_bad_fields_give_two_located_diagnostics() {
    let text = Scenario::builtin_text()
        .replacen("    admission_rate: 1000", "    admission_rate: 0", 1)
        .replacen("    feedback: 0.85", "    feedback: 8.5", 1);
    let err = Scenario::load("launch.yaml", &text).unwrap_err();
    assert_eq!(err.len(), 2, "{err}");
    let out = err.to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("launch.yaml:"), "{out}");
    assert!(lines[0].contains("rooms[0].admission_rate"), "{out}");
    assert!(lines[1].contains("faults[0].feedback"), "{out}");
    assert!(lines[1].contains("between 0 and 1"), "{out}");
    for d in err.iter() {
        let p = d.pos.expect("located");
        let src = text.lines().nth(p.line as usize - 1).unwrap();
        let at = &src[p.col as usize - 1..];
        assert!(at.starts_with('0') || at.starts_with("8.5"), "{d}: {src:?}");
    }
}

#[test]
fn syntax_errors_are_located() {
    let err = Scenario::load("x.yaml", "name: x\nstart: [\n").unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(err.0[0].pos.is_some(), "{err}");
}
