//! Rule files with mistakes: every error is reported at once, each with
//! its file:line:col, field path and what would be valid.

use firebreak::diag::Pos;
use firebreak::rules::parse_rule_file;

const BROKEN: &str = r#"groups:
- name: dup
  interval: 15x
  rules:
  - alert: A
    record: b
    expr: up
  - alert: B
    expr: sum(rate(x[5m])
    for: 5 minutes
    labels:
      bad-name: x
    annotations:
      summary: '{{ $value | humanise }}'
  - expr: up
- name: dup
  rules: []
"#;

#[test]
fn every_error_in_a_file_is_reported_with_its_location() {
    let diags = parse_rule_file("rules.yml", BROKEN).unwrap_err();
    let got: Vec<(Option<Pos>, &str)> = diags.iter().map(|d| (d.pos, d.field.as_str())).collect();
    assert_eq!(
        got,
        vec![
            // `15x` starts at column 13 of line 3.
            (Some(Pos::new(3, 13)), "groups[0].interval"),
            (Some(Pos::new(6, 13)), "groups[0].rules[0].record"),
            // The expression starts at column 11; its unclosed `sum(` is
            // 3 characters in.
            (Some(Pos::new(9, 14)), "groups[0].rules[1].expr"),
            (Some(Pos::new(10, 10)), "groups[0].rules[1].for"),
            (Some(Pos::new(12, 17)), "groups[0].rules[1].labels.bad-name"),
            // Opening quote at 16; `humanise` is the 13th character inside.
            (
                Some(Pos::new(14, 29)),
                "groups[0].rules[1].annotations.summary"
            ),
            (Some(Pos::new(15, 5)), "groups[0].rules[2]"),
            (Some(Pos::new(16, 9)), "groups[1].name"),
        ],
        "{diags}"
    );
    let text = diags.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("rules.yml:3:13: groups[0].interval: invalid duration \"15x\""),
        "{text}"
    );
    assert!(lines[0].contains("30s, 5m or 1h30m"), "{text}");
    assert!(lines[1].contains("not both"), "{text}");
    assert!(lines[2].contains("invalid PromQL"), "{text}");
    assert!(lines[5].contains("did you mean humanize"), "{text}");
    assert!(lines[6].contains("one of alert"), "{text}");
    assert!(
        lines[7].contains("duplicate group name \"dup\" (first at line 2)"),
        "{text}"
    );
}

#[test]
fn recording_rule_checks() {
    let text = r#"groups:
- name: g
  rules:
  - record: 'bad name'
    expr: sum(up)
    for: 1m
    annotations: {summary: x}
"#;
    let diags = parse_rule_file("r.yml", text).unwrap_err();
    let msgs: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
    assert!(
        msgs[0].starts_with("r.yml:4:13: groups[0].rules[0].record: invalid recording rule name"),
        "{msgs:#?}"
    );
    assert!(
        msgs[1]
            .starts_with("r.yml:6:10: groups[0].rules[0].for: for is only valid in alerting rules"),
        "{msgs:#?}"
    );
    assert!(
        msgs[2].starts_with("r.yml:7:28: groups[0].rules[0].annotations"),
        "{msgs:#?}"
    );
}

#[test]
fn yaml_shape_errors_are_located() {
    let text = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    labels: [a, b]\n";
    let diags = parse_rule_file("r.yml", text).unwrap_err();
    assert_eq!(diags.len(), 1);
    assert_eq!(diags.0[0].pos.map(|p| p.line), Some(6), "{diags}");
    let text = "groups:\n- name: g\n  rulez: []\n";
    let diags = parse_rule_file("r.yml", text).unwrap_err();
    assert!(diags.0[0].message.contains("rulez"), "{diags}");
    assert_eq!(diags.0[0].pos.map(|p| p.line), Some(3), "{diags}");
}

#[test]
fn multi_line_expression_errors_land_on_the_right_line() {
    let text = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: |\n      sum by (room) (rate(x[1m]))\n        > on(room) > 3\n";
    let diags = parse_rule_file("r.yml", text).unwrap_err();
    // Second line of the block, which is indented 6: `> on(room) >`; the
    // second `>` is its 14th character.
    assert_eq!(diags.0[0].pos, Some(Pos::new(7, 20)), "{diags}");
}
