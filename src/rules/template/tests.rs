//! Templates end to end. Expected output is what Prometheus 2.42 renders
//! for the same template and data (checked with promtool).

use super::*;

fn labels() -> Labels {
    [
        ("room", "main"),
        ("instance", "10.0.0.1:9090"),
        ("__name__", "x"),
    ]
    .into_iter()
    .collect()
}

/// Two series, `y{j="b"} 7` and `y{j="a"} 8`, answer `y`; `1+1` is a
/// scalar; anything else is empty.
fn fake_query(q: &str) -> Result<Vec<Sample>, String> {
    let s = |j: &str, v: f64| Sample {
        labels: [("__name__", "y"), ("j", j)].into_iter().collect(),
        value: v,
    };
    match q {
        "y" => Ok(vec![s("b", 7.0), s("a", 8.0)]),
        "1+1" => Ok(vec![Sample {
            labels: Labels::new(),
            value: 2.0,
        }]),
        "bad(" => Err("parse error".into()),
        _ => Ok(Vec::new()),
    }
}

fn try_render(src: &str, value: f64) -> Result<String, TemplateError> {
    let labels = labels();
    let ext: Labels = [("cluster", "eu1")].into_iter().collect();
    let query: &QueryFn<'_> = &fake_query;
    Template::parse(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .render(&TemplateData {
            labels: &labels,
            value,
            external_labels: &ext,
            external_url: "http://prom",
            query: Some(query),
        })
}

fn render(src: &str, value: f64) -> String {
    try_render(src, value).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn render_error(src: &str) -> String {
    try_render(src, 3.0).unwrap_err().message
}

fn parse_error(src: &str) -> String {
    Template::parse(src).unwrap_err().message
}

/// Each template rendered with `$value` as given, against its output.
fn renders(cases: &[(&str, f64, &str)]) {
    for (src, value, want) in cases {
        assert_eq!(render(src, *value), *want, "{src}");
    }
}

#[test]
fn renders_common_forms() {
    renders(&[
        (
            "Room {{ $labels.room }} at {{ $value }}",
            0.5,
            "Room main at 0.5",
        ),
        ("{{ .Labels.room }}/{{ .Value }}", 2.0, "main/2"),
        ("{{ $externalLabels.cluster }}", 0.0, "eu1"),
        ("{{ $value | humanize }}", 1234567.0, "1.235M"),
        ("{{ humanizePercentage $value }}", 0.1234, "12.34%"),
        (r#"{{ printf "%.2f" $value }}"#, 2.0 / 3.0, "0.67"),
        ("{{ $labels.room | toUpper }}", 0.0, "MAIN"),
        (r#"{{ "HeLLo" | toLower | title }}"#, 0.0, "Hello"),
        ("{{ $labels.instance | stripPort }}", 0.0, "10.0.0.1"),
        ("[{{ $labels.missing }}]", 0.0, "[]"),
        (r#"{{ $value | printf "%.1f" }}"#, 2.25, "2.2"),
        ("{{ humanizeDuration 90 }}", 0.0, "1m 30s"),
        ("{{/* note */}}x", 0.0, "x"),
        (r#"{{ index $labels "room" }}"#, 0.0, "main"),
        (
            r#"{{ printf "%s=%.0f" $labels.room (humanize 3) }}"#,
            0.0,
            "main=%!f(string=)",
        ),
        (r#"{{ "a}}b" }}"#, 0.0, "a}}b"),
        (r"{{ `raw \n` }}", 0.0, r"raw \n"),
        (
            "{{ 'a' }}|{{ 0x1F }}|{{ 1e3 }}|{{ -1.5 }}",
            0.0,
            "97|31|1000|-1.5",
        ),
    ]);
}

/// `$value` is a float64 and an integer literal an int, so Go formats
/// and compares them differently.
#[test]
fn numbers_keep_go_types() {
    assert_eq!(
        render("{{ printf \"%d\" $value }}|{{ printf \"%d\" 3 }}", 3.0),
        "%!d(float64=3)|3"
    );
    assert_eq!(
        render("{{ 1000000 }}|{{ 1000000.0 }}", 0.0),
        "1000000|1e+06"
    );
    assert!(
        render_error("{{ if gt $value 0 }}pos{{ end }}")
            .contains("incompatible types for comparison"),
    );
    assert_eq!(render("{{ if gt $value 0.0 }}pos{{ end }}", 1.0), "pos");
}

#[test]
fn the_data_prints_as_prometheus_prints_it() {
    assert_eq!(
        render("{{ . }}", 3.0),
        "{map[__name__:x instance:10.0.0.1:9090 room:main] map[cluster:eu1] http://prom 3}"
    );
    assert_eq!(render("{{ $.Labels.room }}", 0.0), "main");
    assert_eq!(
        render("{{ $labels }}", 0.0),
        "map[__name__:x instance:10.0.0.1:9090 room:main]"
    );
}

#[test]
fn trim_markers() {
    assert_eq!(render("a  {{- $labels.room -}}  \n b", 0.0), "amainb");
    assert_eq!(render("a {{- \" \" }} b", 0.0), "a  b");
    assert_eq!(render("a\n{{- /* gone */ -}}\nb", 0.0), "ab");
}

#[test]
fn conditionals() {
    let t = "{{ if gt $value 0.5 }}high{{ else }}low{{ end }}";
    assert_eq!(render(t, 0.9), "high");
    assert_eq!(render(t, 0.1), "low");
    assert_eq!(
        render("{{ if eq $labels.room \"main\" }}yes{{ end }}", 0.0),
        "yes"
    );
    assert_eq!(render("{{ if $labels.nope }}yes{{ end }}", 0.0), "");
    let chain = "{{ if eq $value 3.0 }}three{{ else if gt $value 1.0 }}big{{ else }}small{{ end }}";
    assert_eq!(render(chain, 3.0), "three");
    assert_eq!(render(chain, 2.0), "big");
    assert_eq!(render(chain, 0.0), "small");
    // and/or return an operand, and stop at the first that decides.
    assert_eq!(render("{{ and 1 0 2 }}|{{ or 0 \"\" \"x\" }}", 0.0), "0|x");
    assert_eq!(render("{{ or 1 (first (query \"none\")) }}", 0.0), "1");
}

#[test]
fn with_rebinds_dot() {
    assert_eq!(
        render(
            "{{ with $labels.room }}in {{ . }}{{ else }}nowhere{{ end }}",
            0.0
        ),
        "in main"
    );
    assert_eq!(
        render("{{ with $labels.zz }}{{ . }}{{ else }}no{{ end }}", 0.0),
        "no"
    );
    assert_eq!(
        render("{{ with $labels }}{{ .room }}[{{ .Nope }}]{{ end }}", 0.0),
        "main[]"
    );
    // Go's truth: 0, "", empty maps and results are false.
    assert_eq!(
        render(
            "{{ with 0 }}x{{ else }}zero{{ end }}{{ with $externalLabels }}{{ .cluster }}{{ end }}",
            0.0
        ),
        "zeroeu1"
    );
    assert_eq!(
        render(
            "{{ with $x := $labels.room }}{{ $x }}={{ . }}{{ end }}",
            0.0
        ),
        "main=main"
    );
    // Inside with, `$` is still the data.
    assert_eq!(
        render("{{ with $labels.room }}{{ $.Value }}{{ end }}", 4.0),
        "4"
    );
}

#[test]
fn range_over_labels_is_in_key_order() {
    assert_eq!(
        render(
            "{{ range $k, $v := $labels }}{{ $k }}={{ $v }},{{ end }}",
            0.0
        ),
        "__name__=x,instance=10.0.0.1:9090,room=main,"
    );
    assert_eq!(
        render("{{ range $v := $labels }}{{ $v }};{{ end }}", 0.0),
        "x;10.0.0.1:9090;main;"
    );
    assert_eq!(
        render("{{ range $labels }}<{{ . }}>{{ end }}", 0.0),
        "<x><10.0.0.1:9090><main>"
    );
    assert_eq!(
        render(
            "{{ range $externalLabels }}{{ . }}{{ else }}none{{ end }}",
            0.0
        ),
        "eu1"
    );
    assert_eq!(
        render(
            "{{ range $k, $v := $labels }}{{ if eq $k \"instance\" }}{{ continue }}{{ end }}{{ if eq $k \"room\" }}{{ break }}{{ end }}{{ $k }}{{ end }}",
            0.0
        ),
        "__name__"
    );
    assert!(
        render_error("{{ range \"abc\" }}{{ . }}{{ end }}")
            .contains("range can't iterate over abc")
    );
}

#[test]
fn query_results() {
    renders(&[
        (
            r#"{{ with query "y" }}{{ . | first | value }}{{ end }}"#,
            0.0,
            "7",
        ),
        (
            r#"{{ with query "none" }}{{ . | first | value }}{{ else }}no data{{ end }}"#,
            0.0,
            "no data",
        ),
        (
            r#"{{ range query "y" }}{{ .Labels.j }}:{{ .Value }} {{ end }}"#,
            0.0,
            "b:7 a:8 ",
        ),
        (
            r#"{{ range $i, $s := query "y" | sortByLabel "j" }}{{ $i }}{{ label "j" $s }}{{ end }}"#,
            0.0,
            "0a1b",
        ),
        (r#"{{ query "y" | first }}"#, 0.0, "{map[__name__:y j:b] 7}"),
        // Prometheus prints the samples' addresses here.
        (
            r#"{{ query "y" }}"#,
            0.0,
            "[{map[__name__:y j:b] 7} {map[__name__:y j:a] 8}]",
        ),
        (r#"{{ (query "y" | first).Labels.j }}"#, 0.0, "b"),
        (
            r#"{{ index (query "y") 1 }}"#,
            0.0,
            "{map[__name__:y j:a] 8}",
        ),
        (r#"{{ len (query "y") }}"#, 0.0, "2"),
        (r#"{{ query "1+1" | first | value }}"#, 0.0, "2"),
        (
            r#"{{ printf "%.1f" (query "y" | first | value) }}"#,
            0.0,
            "7.0",
        ),
        (r#"[{{ strvalue (query "y" | first) }}]"#, 0.0, "[]"),
    ]);
    assert!(
        render_error("{{ query \"none\" | first }}")
            .contains("first() called on vector with no elements")
    );
    assert!(render_error("{{ query \"bad(\" }}").contains("error calling query: parse error"));
    assert!(
        render_error("{{ label \"j\" (query \"y\") }}")
            .contains("expected *template.sample; got template.queryResult")
    );
    assert!(render_error("{{ index (query \"y\") 9 }}").contains("index out of range: 9"));
}

#[test]
fn variables_follow_go_scoping() {
    // `=` assigns the variable outside the if; the one declared inside
    // ends with it.
    assert_eq!(
        render(
            "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ end }}{{ $x }}",
            0.0
        ),
        "2"
    );
    assert!(
        parse_error("{{ if true }}{{ $y := 3 }}{{ end }}{{ $y }}")
            .contains("undefined variable \"$y\"")
    );
    // A variable declared in the pipeline of an if is seen by its else.
    assert_eq!(
        render(
            "{{ if $r := $labels.zz }}{{ $r }}{{ else }}[{{ $r }}]{{ end }}",
            0.0
        ),
        "[]"
    );
    // Each iteration starts afresh; `=` carries out of the loop.
    assert_eq!(
        render(
            "{{ $last := \"\" }}{{ range $k, $v := $labels }}{{ $last = $k }}{{ $n := $v }}{{ end }}{{ $last }}",
            0.0
        ),
        "room"
    );
    assert_eq!(render("{{ $x := 1 }}{{ $x := \"b\" }}{{ $x }}", 0.0), "b");
    // The variables Prometheus declares are ordinary ones.
    assert_eq!(
        render("{{ $labels = $externalLabels }}{{ $labels.cluster }}", 0.0),
        "eu1"
    );
    assert_eq!(
        render(
            "{{ $i := 0 }}{{ range $i = $labels }}{{ end }}{{ $i }}",
            0.0
        ),
        "main"
    );
    assert!(parse_error("{{ $nope = 1 }}").contains("undefined variable \"$nope\""));
    assert!(parse_error("{{ $a, $b := 1 }}").contains("too many declarations"));
    // A declaration prints nothing.
    assert_eq!(render("a{{ $x := 5 }}b", 0.0), "ab");
}

#[test]
fn defined_templates() {
    assert_eq!(
        render(
            "{{ define \"room\" }}[{{ . }}]{{ end }}{{ template \"room\" $labels.room }}",
            0.0
        ),
        "[main]"
    );
    assert_eq!(
        render("{{ block \"b\" $value }}v={{ . }}{{ end }}", 2.0),
        "v=2"
    );
    assert_eq!(
        render(
            "{{ define \"n\" }}{{ $ }}{{ end }}{{ template \"n\" }}",
            0.0
        ),
        "<no value>"
    );
    // A defined template sees only `$`.
    assert!(
        parse_error("{{ define \"x\" }}{{ $labels.room }}{{ end }}")
            .contains("undefined variable \"$labels\"")
    );
    assert!(render_error("{{ template \"nope\" }}").contains("template \"nope\" not defined"));
    assert!(
        render_error("{{ define \"r\" }}{{ template \"r\" }}{{ end }}{{ template \"r\" }}")
            .contains("maximum template depth")
    );
    assert!(
        parse_error("{{ if true }}{{ define \"x\" }}{{ end }}{{ end }}")
            .contains("only allowed at the top level")
    );
}

#[test]
fn go_escapers_and_printers() {
    assert_eq!(
        render(
            "{{ html \"<b>\" }}|{{ js \"'\" }}|{{ urlquery \"a b\" }}",
            0.0
        ),
        "&lt;b&gt;|\\'|a+b"
    );
    assert_eq!(
        render("{{ print 1 2 \"a\" 3 }}|{{ println \"x\" }}", 0.0),
        "1 2a3|x\n"
    );
    assert_eq!(
        render("{{ html (query \"y\" | first) }}|{{ urlquery nil }}", 0.0),
        "{map[__name__:y j:b] 7}|%3Cno+value%3E"
    );
    assert_eq!(
        render("{{ printf \"%v %v\" (1 | not) nil }}", 0.0),
        "false <nil>"
    );
    assert_eq!(
        render("{{ (args 1 \"a\").arg1 }}|{{ (args 1).arg5 }}", 0.0),
        "a|<no value>"
    );
    assert_eq!(
        render("{{ slice \"abcdef\" 1 3 }}|{{ index \"abc\" 1 }}", 0.0),
        "bc|98"
    );
    assert_eq!(
        render(
            "{{ parseDuration \"1h30m\" }}|{{ toTime 1435065584.128 }}",
            0.0
        ),
        "5400|2015-06-23 13:19:44.128 +0000 UTC"
    );
    assert_eq!(
        render("{{ externalURL }}|{{ pathPrefix }}", 0.0),
        "http://prom|"
    );
    assert_eq!(
        render("{{ graphLink \"up\" }}", 0.0),
        "/graph?g0.expr=up&g0.tab=0"
    );
}

#[test]
fn parse_errors_are_located() {
    let e = Template::parse("ok {{ $value | humanise }}").unwrap_err();
    assert_eq!((e.line, e.col), (1, 16), "{e}");
    assert!(e.message.contains("did you mean humanize"), "{e}");
    let e = Template::parse("line one\n  {{ $lables.x }}").unwrap_err();
    assert_eq!((e.line, e.col), (2, 6), "{e}");
    assert!(e.message.contains("undefined variable"), "{e}");
    assert!(parse_error("{{ $value ").contains("unclosed action"));
    assert!(parse_error("{{ if $value }}x").contains("unexpected EOF"));
    assert!(parse_error("{{ end }}").contains("unexpected {{end}}"));
    assert!(parse_error("{{ .Foo }}").contains("unknown field .Foo"));
    assert!(parse_error("{{ break }}").contains("{{break}} outside {{range}}"));
    assert!(
        parse_error("{{ \"a\" | \"b\" }}").contains("non executable command in pipeline stage 2")
    );
    assert!(parse_error("{{ $labels.room 1 }}").contains("is not a function"));
    assert!(parse_error("{{ (").contains("unclosed"));
    assert!(parse_error("{{ nil }}").contains("nil is not a command"));
    assert!(parse_error("{{ 1 | $labels }}").contains("is not a function"));
}

/// What stays unsupported is refused when the rule file loads, naming
/// the construct (see the README's known differences).
#[test]
fn unsupported_forms_are_refused_at_load() {
    let e = parse_error("{{ (toTime $value).Format \"2006\" }}");
    assert!(
        e.contains("methods of the time toTime returns are not supported"),
        "{e}"
    );
    assert!(e.contains(".Format"), "{e}");
    let e = parse_error("{{ 1i }}");
    assert!(e.contains("complex number 1i is not supported"), "{e}");
}

/// The parser recurses per level, so a hostile template cannot nest as
/// deep as it likes.
#[test]
fn nesting_is_bounded() {
    let ifs = |n: usize| format!("{}x{}", "{{ if 1 }}".repeat(n), "{{ end }}".repeat(n));
    assert_eq!(render(&ifs(100), 0.0), "x");
    assert!(parse_error(&ifs(101)).contains("nest deeper than 100 levels"));
    let parens = |n: usize| format!("{{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n));
    assert_eq!(render(&parens(100), 0.0), "1");
    assert!(parse_error(&parens(10_000)).contains("nest deeper than 100 levels"));
}

#[test]
fn calls_are_found_for_load_checks() {
    let t = Template::parse("a\n{{ with query \"up\" }}{{ . }}{{ end }}").unwrap();
    assert_eq!(t.calls("query"), Some((2, 9)));
    let t =
        Template::parse("{{ define \"x\" }}{{ printf \"%v\" (query \"up\") }}{{ end }}").unwrap();
    assert!(t.calls("query").is_some());
    assert_eq!(
        Template::parse("{{ $value }}").unwrap().calls("query"),
        None
    );
}

#[test]
fn render_errors_are_reported_inline() {
    let t = Template::parse("{{ humanize $labels.room }}").unwrap();
    let labels: Labels = [("room", "main")].into_iter().collect();
    let data = TemplateData {
        labels: &labels,
        value: 0.0,
        external_labels: &Labels::new(),
        external_url: "",
        query: None,
    };
    assert!(t.render(&data).is_err());
    assert!(
        t.render_or_error(&data)
            .starts_with("<error expanding template: ")
    );
    let t = Template::parse("{{ query \"up\" }}").unwrap();
    assert!(
        t.render(&data)
            .unwrap_err()
            .message
            .contains("no queries can be made")
    );
}
