//! Go's `fmt` and `strconv` as templates reach them: `printf`, `print`,
//! `println`, the text an action prints, and the number formatting the
//! humanize functions use, so output matches Prometheus byte for byte,
//! including Go's `%!verb(type=value)` for a mismatched verb.
//!
//! One difference is unavoidable: Go prints a pointer nested in a value
//! (each sample of a printed query result) as its memory address; here it
//! prints as the sample it points to.

use std::fmt::Write as _;

use super::value::{QSample, ROOT_TYPE, RootData, Val};

/// Go's `%v` (and fmt.Sprint) for a float64: `%g` with the shortest
/// representation.
pub fn go_v(v: f64) -> String {
    go_g(v, None, false)
}

/// strconv's `%g` / `%.Ng`: `prec` is the number of significant digits
/// (None: shortest, which decides on the exponent form with precision 6,
/// so 1e6 prints as 1e+06).
pub fn go_g(v: f64, prec: Option<usize>, upper: bool) -> String {
    if let Some(s) = special(v) {
        return s.to_owned();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let sci = match prec {
        Some(p) => format!("{:.*e}", p.max(1) - 1, v),
        None => format!("{v:e}"),
    };
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let eprec = prec.map_or(6, |p| p.max(1) as i32);
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        push_exp(&mut out, if upper { 'E' } else { 'e' }, exp);
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// Go's `%.4g`, which the humanize functions use.
pub fn g4(v: f64) -> String {
    go_g(v, Some(4), false)
}

fn special(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf" } else { "-Inf" })
    } else {
        None
    }
}

/// An exponent as Go writes it: a sign and at least two digits.
fn push_exp(out: &mut String, e: char, exp: i32) {
    let _ = write!(
        out,
        "{e}{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.unsigned_abs()
    );
}

/// strconv.FormatFloat for verbs e, E, f, F, g, G, b, x, X; `prec` None
/// is Go's -1 (shortest).
fn format_float(v: f64, verb: char, prec: Option<usize>) -> String {
    if let Some(s) = special(v) {
        return s.to_owned();
    }
    match verb {
        'e' | 'E' => {
            let s = match prec {
                Some(p) => format!("{v:.p$e}"),
                None => format!("{v:e}"),
            };
            let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
            let mut out = m.to_owned();
            push_exp(&mut out, verb, e.parse().unwrap_or(0));
            out
        }
        'f' | 'F' => match prec {
            Some(p) => format!("{v:.p$}"),
            None => format!("{v}"),
        },
        'g' | 'G' => go_g(v, prec.map(|p| p.max(1)), verb == 'G'),
        'b' => {
            let bits = v.to_bits();
            let exp = ((bits >> 52) & 0x7ff) as i64;
            let mut mant = bits & ((1 << 52) - 1);
            let exp = if exp == 0 {
                1 - 1075
            } else {
                mant |= 1 << 52;
                exp - 1075
            };
            format!(
                "{}{mant}p{}{exp}",
                if v.is_sign_negative() { "-" } else { "" },
                if exp >= 0 { "+" } else { "" }
            )
        }
        _ => hex_float(v, verb, prec),
    }
}

/// strconv's `%x` for a float: `-0x1.yyyp±dd`, rounded to `prec` hex
/// digits (round half to even) when given.
fn hex_float(v: f64, verb: char, prec: Option<usize>) -> String {
    let bits = v.to_bits();
    let raw_exp = ((bits >> 52) & 0x7ff) as i64;
    let mut mant = bits & ((1 << 52) - 1);
    let mut exp = if raw_exp == 0 {
        1 - 1023
    } else {
        mant |= 1 << 52;
        raw_exp - 1023
    };
    if mant == 0 {
        exp = 0;
    }
    // The leading 1 (if any) at bit 60.
    mant <<= 60 - 52;
    while mant != 0 && mant & (1 << 60) == 0 {
        mant <<= 1;
        exp -= 1;
    }
    if let Some(p) = prec.filter(|p| *p < 15) {
        let shift = (p * 4) as u32;
        let extra = (mant << shift) & ((1 << 60) - 1);
        mant >>= 60 - shift;
        if extra | (mant & 1) > 1 << 59 {
            mant += 1;
        }
        mant <<= 60 - shift;
        if mant & (1 << 61) != 0 {
            mant >>= 1;
            exp += 1;
        }
    }
    let digits: &[u8] = if verb == 'X' {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = String::new();
    if v.is_sign_negative() {
        out.push('-');
    }
    out.push('0');
    out.push(verb);
    out.push(char::from(b'0' + ((mant >> 60) & 1) as u8));
    mant <<= 4;
    let hex = |m: u64| char::from(digits[((m >> 60) & 15) as usize]);
    match prec {
        None if mant != 0 => {
            out.push('.');
            while mant != 0 {
                out.push(hex(mant));
                mant <<= 4;
            }
        }
        Some(p) if p > 0 => {
            out.push('.');
            for _ in 0..p {
                out.push(hex(mant));
                mant <<= 4;
            }
        }
        _ => {}
    }
    out.push(if verb == 'X' { 'P' } else { 'p' });
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.unsigned_abs());
    out
}

/// Whether Go's strconv.IsPrint holds: letters, marks, numbers,
/// punctuation, symbols and the ASCII space. Rust has no general
/// category, so the separators and format characters are listed.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c,
        '\u{AD}' | '\u{600}'..='\u{605}' | '\u{61C}' | '\u{6DD}' | '\u{70F}'
        | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..
    )
}

/// strconv.Quote / QuoteToASCII / QuoteRune: `quote` is `"` or `'`.
pub(super) fn quote_with(s: &str, quote: char, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        if c == quote || c == '\\' {
            out.push('\\');
            out.push(c);
            continue;
        }
        let printable = if ascii_only {
            c.is_ascii() && is_print(c)
        } else {
            is_print(c)
        };
        if printable {
            out.push(c);
            continue;
        }
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push(quote);
    out
}

/// Go's time.Time String for a UTC time in Unix milliseconds.
pub(super) fn time_string(ms: i64) -> Option<String> {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000) as u32);
    let t = chrono::DateTime::from_timestamp(secs, millis * 1_000_000)?;
    let frac = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}").trim_end_matches('0').to_owned()
    };
    Some(format!("{}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S")))
}

/// The flags of one verb.
#[derive(Clone, Copy, Default)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    sharp_v: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

/// Go's `pp`: one formatting call's buffer and the current verb's flags.
#[derive(Default)]
struct Printer {
    buf: String,
    f: Flags,
}

impl Printer {
    fn padding(&mut self, n: usize) {
        let c = if self.f.zero { '0' } else { ' ' };
        self.buf.extend(std::iter::repeat_n(c, n));
    }

    fn pad(&mut self, s: &str) {
        let Some(w) = self.f.wid.filter(|w| *w > 0) else {
            self.buf.push_str(s);
            return;
        };
        let n = w.saturating_sub(s.chars().count());
        if self.f.minus {
            self.buf.push_str(s);
            self.padding(n);
        } else {
            self.padding(n);
            self.buf.push_str(s);
        }
    }

    /// Pads with spaces whatever the `0` flag says.
    fn pad_spaces(&mut self, s: &str) {
        let zero = std::mem::replace(&mut self.f.zero, false);
        self.pad(s);
        self.f.zero = zero;
    }

    fn truncate<'s>(&self, s: &'s str) -> &'s str {
        match self.f.prec {
            Some(p) => s.char_indices().nth(p).map_or(s, |(i, _)| &s[..i]),
            None => s,
        }
    }

    fn bad_verb(&mut self, v: &Val, verb: char) {
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        if matches!(v, Val::Nil) {
            self.buf.push_str("<nil>");
        } else {
            self.buf.push_str(v.type_name());
            self.buf.push('=');
            self.arg(v, 'v');
        }
        self.buf.push(')');
    }

    /// Go's printArg: one operand at depth 0.
    fn arg(&mut self, v: &Val, verb: char) {
        match (v, verb) {
            (Val::Nil, 'T' | 'v') => self.pad("<nil>"),
            (Val::Nil, _) => self.bad_verb(v, verb),
            (_, 'T') => {
                let t = self.truncate(v.type_name()).to_owned();
                self.pad(&t);
            }
            _ => self.value(v, verb, 0),
        }
    }

    /// Go's printValue: `depth` > 0 inside maps, structs and slices.
    fn value(&mut self, v: &Val, verb: char, depth: usize) {
        match v {
            Val::Nil => match verb {
                'v' => self.buf.push_str("<nil>"),
                _ => self.bad_verb(v, verb),
            },
            Val::Bool(b) => match verb {
                't' | 'v' => self.pad(if *b { "true" } else { "false" }),
                _ => self.bad_verb(v, verb),
            },
            Val::Int(i) => self.int(*i, v, verb),
            Val::Float(x) => self.float(*x, v, verb),
            Val::Str(s) => self.string(s, v, verb),
            Val::Time(ms) => match (verb, time_string(*ms)) {
                ('v' | 's' | 'q' | 'x' | 'X', Some(t)) => self.string(&t, v, verb),
                _ => self.bad_verb(&Val::Int(*ms), verb),
            },
            Val::Labels(m) => self.map(
                "map[string]string",
                m.iter().map(|(k, x)| (k.as_str(), Val::Str(x.clone()))),
                verb,
                depth,
            ),
            Val::Args(m) => self.map(
                "map[string]interface {}",
                m.iter().map(|(k, x)| (k.as_str(), x.clone())),
                verb,
                depth,
            ),
            Val::Sample(s) => {
                if depth == 0 {
                    self.buf.push('&');
                }
                self.sample(s, verb, depth + 1);
            }
            Val::Vector(items) => {
                if self.f.sharp_v {
                    self.buf.push_str("template.queryResult{");
                } else {
                    self.buf.push('[');
                }
                for (i, s) in items.iter().enumerate() {
                    if i > 0 {
                        self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
                    }
                    self.sample(s, verb, depth + 1);
                }
                self.buf.push(if self.f.sharp_v { '}' } else { ']' });
            }
            Val::Root(r) => self.root(r, verb, depth + 1),
        }
    }

    fn map<'k>(
        &mut self,
        ty: &str,
        entries: impl Iterator<Item = (&'k str, Val)>,
        verb: char,
        depth: usize,
    ) {
        if self.f.sharp_v {
            self.buf.push_str(ty);
            self.buf.push('{');
        } else {
            self.buf.push_str("map[");
        }
        for (i, (k, x)) in entries.enumerate() {
            if i > 0 {
                self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
            }
            self.value(&Val::Str(k.to_owned()), verb, depth + 1);
            self.buf.push(':');
            match x {
                // An interface holding nil.
                Val::Nil if self.f.sharp_v => self.buf.push_str("interface {}(nil)"),
                x => self.value(&x, verb, depth + 1),
            }
        }
        self.buf.push(if self.f.sharp_v { '}' } else { ']' });
    }

    fn fields(&mut self, fields: &[(&str, Val)], verb: char, depth: usize) {
        self.buf.push('{');
        for (i, (name, x)) in fields.iter().enumerate() {
            if i > 0 {
                self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
            }
            if self.f.plus_v || self.f.sharp_v {
                self.buf.push_str(name);
                self.buf.push(':');
            }
            self.value(x, verb, depth);
        }
        self.buf.push('}');
    }

    fn sample(&mut self, s: &QSample, verb: char, depth: usize) {
        if self.f.sharp_v {
            self.buf.push_str("template.sample");
        }
        self.fields(
            &[
                ("Labels", Val::Labels(s.labels.clone())),
                ("Value", Val::Float(s.value)),
            ],
            verb,
            depth,
        );
    }

    fn root(&mut self, r: &RootData, verb: char, depth: usize) {
        if self.f.sharp_v {
            self.buf.push_str(ROOT_TYPE);
        }
        self.fields(
            &[
                ("Labels", Val::Labels(r.labels.clone())),
                ("ExternalLabels", Val::Labels(r.external_labels.clone())),
                ("ExternalURL", Val::Str(r.external_url.clone())),
                ("Value", Val::Float(r.value)),
            ],
            verb,
            depth,
        );
    }

    fn string(&mut self, s: &str, v: &Val, verb: char) {
        match verb {
            'v' if self.f.sharp_v => self.quoted(s),
            'v' | 's' => {
                let t = self.truncate(s).to_owned();
                self.pad(&t);
            }
            'q' => self.quoted(s),
            'x' | 'X' => self.hex_string(s, verb),
            _ => self.bad_verb(v, verb),
        }
    }

    fn quoted(&mut self, s: &str) {
        let s = self.truncate(s);
        let can_backquote =
            !s.contains(['`', '\u{FEFF}']) && !s.chars().any(|c| c.is_control() && c != '\t');
        let q = if self.f.sharp && can_backquote {
            format!("`{s}`")
        } else {
            quote_with(s, '"', self.f.plus)
        };
        self.pad(&q);
    }

    fn hex_string(&mut self, s: &str, verb: char) {
        let digits: &[u8] = if verb == 'X' {
            b"0123456789ABCDEFX"
        } else {
            b"0123456789abcdefx"
        };
        let bytes = &s.as_bytes()[..self.f.prec.map_or(s.len(), |p| p.min(s.len()))];
        let n = bytes.len();
        if n == 0 {
            if let Some(w) = self.f.wid {
                self.padding(w);
            }
            return;
        }
        let mut width = 2 * n;
        if self.f.space {
            if self.f.sharp {
                width *= 2;
            }
            width += n - 1;
        } else if self.f.sharp {
            width += 2;
        }
        let fill = self.f.wid.map_or(0, |w| w.saturating_sub(width));
        if !self.f.minus {
            self.padding(fill);
        }
        let prefix = format!("0{}", char::from(digits[16]));
        if self.f.sharp {
            self.buf.push_str(&prefix);
        }
        for (i, b) in bytes.iter().enumerate() {
            if self.f.space && i > 0 {
                self.buf.push(' ');
                if self.f.sharp {
                    self.buf.push_str(&prefix);
                }
            }
            self.buf.push(char::from(digits[usize::from(b >> 4)]));
            self.buf.push(char::from(digits[usize::from(b & 0xf)]));
        }
        if self.f.minus {
            self.padding(fill);
        }
    }

    fn int(&mut self, i: i64, v: &Val, verb: char) {
        match verb {
            'v' | 'd' => self.integer(i, 10, verb, false),
            'b' => self.integer(i, 2, verb, false),
            'o' | 'O' => self.integer(i, 8, verb, false),
            'x' => self.integer(i, 16, verb, false),
            'X' => self.integer(i, 16, verb, true),
            'c' => {
                let c = rune(i);
                self.pad(&c.to_string());
            }
            'q' => {
                let q = quote_with(&rune(i).to_string(), '\'', self.f.plus);
                self.pad(&q);
            }
            'U' => self.unicode(i),
            _ => self.bad_verb(v, verb),
        }
    }

    /// Go's fmtInteger.
    fn integer(&mut self, i: i64, base: u32, verb: char, upper: bool) {
        let negative = i < 0;
        let mut u = i.unsigned_abs();
        let mut prec = 0;
        if let Some(p) = self.f.prec {
            prec = p;
            if p == 0 && u == 0 {
                let w = self.f.wid.unwrap_or(0);
                let zero = std::mem::replace(&mut self.f.zero, false);
                self.padding(w);
                self.f.zero = zero;
                return;
            }
        } else if let (true, Some(w)) = (self.f.zero, self.f.wid) {
            prec = w;
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        let digits: &[u8] = if upper {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let mut rev = Vec::new();
        loop {
            rev.push(digits[(u % u64::from(base)) as usize]);
            u /= u64::from(base);
            if u == 0 {
                break;
            }
        }
        while rev.len() < prec {
            rev.push(b'0');
        }
        if self.f.sharp {
            match base {
                2 => rev.extend_from_slice(b"b0"),
                8 if rev.last() != Some(&b'0') => rev.push(b'0'),
                16 => rev.extend_from_slice(if upper { b"X0" } else { b"x0" }),
                _ => {}
            }
        }
        if verb == 'O' {
            rev.extend_from_slice(b"o0");
        }
        if negative {
            rev.push(b'-');
        } else if self.f.plus {
            rev.push(b'+');
        } else if self.f.space {
            rev.push(b' ');
        }
        rev.reverse();
        let s = String::from_utf8(rev).unwrap_or_default();
        self.pad_spaces(&s);
    }

    fn unicode(&mut self, i: i64) {
        let u = i as u64;
        let width = self.f.prec.filter(|p| *p > 4).unwrap_or(4);
        let mut s = format!("U+{u:0width$X}");
        if self.f.sharp
            && let Some(c) = u32::try_from(u).ok().and_then(char::from_u32)
            && is_print(c)
        {
            let _ = write!(s, " '{c}'");
        }
        self.pad_spaces(&s);
    }

    fn float(&mut self, x: f64, v: &Val, verb: char) {
        match verb {
            'v' => self.float_as(x, 'g', None),
            'b' | 'g' | 'G' | 'x' | 'X' => self.float_as(x, verb, None),
            'f' | 'e' | 'E' | 'F' => self.float_as(x, verb, Some(6)),
            _ => self.bad_verb(v, verb),
        }
    }

    /// Go's fmt.fmtFloat.
    fn float_as(&mut self, x: f64, verb: char, default_prec: Option<usize>) {
        let prec = self.f.prec.or(default_prec);
        let formatted = format_float(x, verb, prec);
        let mut num = if formatted.starts_with(['-', '+']) {
            formatted
        } else {
            format!("+{formatted}")
        };
        if self.f.space && num.starts_with('+') && !self.f.plus {
            num.replace_range(..1, " ");
        }
        if num[1..].starts_with(['I', 'N']) {
            if num[1..].starts_with('N') && !self.f.space && !self.f.plus {
                num.remove(0);
            }
            self.pad_spaces(&num);
            return;
        }
        if self.f.sharp && verb != 'b' {
            num = sharp_float(&num, verb, prec);
        }
        if self.f.plus || !num.starts_with('+') {
            if let Some(w) = self.f.wid.filter(|w| self.f.zero && *w > num.len()) {
                let (sign, rest) = num.split_at(1);
                self.buf.push_str(sign);
                self.padding(w - num.len());
                self.buf.push_str(rest);
                return;
            }
            self.pad(&num);
            return;
        }
        let rest = num[1..].to_owned();
        self.pad(&rest);
    }
}

/// A code point from an integer; out of range is U+FFFD, as in Go.
fn rune(i: i64) -> char {
    u32::try_from(i)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{FFFD}')
}

/// `#` on a float: always a decimal point, and `%g` keeps its trailing
/// zeros up to the precision.
fn sharp_float(num: &str, verb: char, prec: Option<usize>) -> String {
    let mut digits: i64 = match verb {
        'v' | 'g' | 'G' | 'x' => prec.map_or(6, |p| p as i64),
        _ => 0,
    };
    let (mut body, mut tail) = (String::new(), String::new());
    let mut has_point = false;
    let mut nonzero = false;
    let chars: Vec<char> = num.chars().collect();
    body.push(chars[0]);
    let mut i = 1;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '.' => has_point = true,
            'p' | 'P' => {
                tail = chars[i..].iter().collect();
                break;
            }
            'e' | 'E' if verb != 'x' && verb != 'X' => {
                tail = chars[i..].iter().collect();
                break;
            }
            _ => {
                if c != '0' {
                    nonzero = true;
                }
                if nonzero {
                    digits -= 1;
                }
            }
        }
        body.push(c);
        i += 1;
    }
    if !has_point {
        if body.len() == 2 && body.ends_with('0') {
            digits -= 1;
        }
        body.push('.');
    }
    while digits > 0 {
        body.push('0');
        digits -= 1;
    }
    body.push_str(&tail);
    body
}

/// fmt.Sprint: spaces between operands when neither is a string.
pub(super) fn sprint(args: &[Val]) -> String {
    let mut p = Printer::default();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Val::Str(_));
        if i > 0 && !is_string && !prev_string {
            p.buf.push(' ');
        }
        p.arg(a, 'v');
        prev_string = is_string;
    }
    p.buf
}

/// fmt.Sprintln: spaces between all operands, and a newline.
pub(super) fn sprintln(args: &[Val]) -> String {
    let mut p = Printer::default();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            p.buf.push(' ');
        }
        p.arg(a, 'v');
    }
    p.buf.push('\n');
    p.buf
}

/// What `{{ pipeline }}` writes: fmt.Print of the value, a pointer
/// followed to what it points to, nothing as `<no value>`.
pub(super) fn action_text(v: &Val) -> String {
    printable(std::slice::from_ref(v))
}

/// fmt.Sprint of values as text/template hands them over (to an action,
/// and to `html`, `js` and `urlquery`): a pointer followed to what it
/// points to, nothing as the string `<no value>`.
pub(super) fn printable(args: &[Val]) -> String {
    let mut p = Printer::default();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Val::Str(_) | Val::Nil);
        if i > 0 && !is_string && !prev_string {
            p.buf.push(' ');
        }
        match a {
            Val::Nil => p.buf.push_str("<no value>"),
            Val::Sample(s) => p.sample(s, 'v', 1),
            a => p.arg(a, 'v'),
        }
        prev_string = is_string;
    }
    p.buf
}

/// `[n]` in a format: the 0-based argument index, the bytes it took, and
/// whether it parsed.
fn arg_number(format: &[u8], i: usize) -> Option<(Option<usize>, usize)> {
    if format.get(i) != Some(&b'[') {
        return None;
    }
    let Some(close) = format[i..].iter().position(|&b| b == b']') else {
        return Some((None, 1));
    };
    let inner = &format[i + 1..i + close];
    let n = (!inner.is_empty() && inner.len() < 7 && inner.iter().all(u8::is_ascii_digit))
        .then(|| std::str::from_utf8(inner).ok()?.parse::<usize>().ok())
        .flatten()
        .filter(|n| *n >= 1);
    Some((n.map(|n| n - 1), close + 1))
}

/// A run of decimal digits: its value (None past 10^6, as Go's
/// tooLarge) and where it ends.
fn parse_num(format: &[u8], mut i: usize) -> (Option<usize>, usize) {
    let start = i;
    let mut n: usize = 0;
    while i < format.len() && format[i].is_ascii_digit() {
        if n > 1_000_000 {
            return (None, format.len());
        }
        n = n * 10 + usize::from(format[i] - b'0');
        i += 1;
    }
    ((i > start).then_some(n), i)
}

/// fmt.Sprintf.
pub(super) fn sprintf(format: &str, args: &[Val]) -> String {
    let fb = format.as_bytes();
    let mut p = Printer::default();
    let mut argn = 0usize;
    let mut reordered = false;
    let mut i = 0;
    while i < fb.len() {
        let start = i;
        while i < fb.len() && fb[i] != b'%' {
            i += 1;
        }
        p.buf.push_str(&format[start..i]);
        if i >= fb.len() {
            break;
        }
        i += 1;
        p.f = Flags::default();
        while i < fb.len() {
            match fb[i] {
                b'#' => p.f.sharp = true,
                b'0' => p.f.zero = !p.f.minus,
                b'+' => p.f.plus = true,
                b'-' => {
                    p.f.minus = true;
                    p.f.zero = false;
                }
                b' ' => p.f.space = true,
                _ => break,
            }
            i += 1;
        }
        let mut good = true;
        let mut after_index = false;
        let mut index = |i: &mut usize, argn: &mut usize, good: &mut bool| -> bool {
            match arg_number(fb, *i) {
                None => false,
                Some((n, took)) => {
                    reordered = true;
                    *i += took;
                    match n.filter(|n| *n < args.len()) {
                        Some(n) => {
                            *argn = n;
                            true
                        }
                        None => {
                            *good = false;
                            n.is_some()
                        }
                    }
                }
            }
        };
        after_index = index(&mut i, &mut argn, &mut good) || after_index;
        if fb.get(i) == Some(&b'*') {
            i += 1;
            match int_arg(args, &mut argn) {
                Some(w) if w < 0 => {
                    p.f.wid = Some(w.unsigned_abs() as usize);
                    p.f.minus = true;
                    p.f.zero = false;
                }
                Some(w) => p.f.wid = Some(w as usize),
                None => p.buf.push_str("%!(BADWIDTH)"),
            }
            after_index = false;
        } else {
            let (w, ni) = parse_num(fb, i);
            i = ni;
            p.f.wid = w;
            if after_index && w.is_some() {
                good = false;
            }
        }
        if i + 1 < fb.len() && fb[i] == b'.' {
            i += 1;
            if after_index {
                good = false;
            }
            after_index = index(&mut i, &mut argn, &mut good);
            if fb.get(i) == Some(&b'*') {
                i += 1;
                match int_arg(args, &mut argn) {
                    Some(pr) if pr >= 0 => p.f.prec = Some(pr as usize),
                    _ => p.buf.push_str("%!(BADPREC)"),
                }
                after_index = false;
            } else {
                let (pr, ni) = parse_num(fb, i);
                i = ni;
                p.f.prec = Some(pr.unwrap_or(0));
            }
        }
        if !after_index {
            index(&mut i, &mut argn, &mut good);
        }
        let Some(verb) = format[i.min(fb.len())..].chars().next() else {
            p.buf.push_str("%!(NOVERB)");
            break;
        };
        i += verb.len_utf8();
        if verb == '%' {
            p.buf.push('%');
        } else if !good {
            let _ = write!(p.buf, "%!{verb}(BADINDEX)");
        } else if argn >= args.len() {
            let _ = write!(p.buf, "%!{verb}(MISSING)");
        } else {
            if verb == 'v' {
                p.f.sharp_v = std::mem::take(&mut p.f.sharp);
                p.f.plus_v = std::mem::take(&mut p.f.plus);
            }
            p.arg(&args[argn], verb);
            argn += 1;
        }
    }
    if !reordered && argn < args.len() {
        p.f = Flags::default();
        p.buf.push_str("%!(EXTRA ");
        for (k, a) in args[argn..].iter().enumerate() {
            if k > 0 {
                p.buf.push_str(", ");
            }
            if matches!(a, Val::Nil) {
                p.buf.push_str("<nil>");
            } else {
                p.buf.push_str(a.type_name());
                p.buf.push('=');
                p.arg(a, 'v');
            }
        }
        p.buf.push(')');
    }
    p.buf
}

/// A `*` width or precision: the next argument, if it is an int.
fn int_arg(args: &[Val], argn: &mut usize) -> Option<i64> {
    let a = args.get(*argn)?;
    *argn += 1;
    match a {
        Val::Int(n) if n.unsigned_abs() <= 1_000_000 => Some(*n),
        _ => None,
    }
}

/// url.QueryEscape.
pub(super) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b' ' => out.push('+'),
            b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') => {
                out.push(char::from(b))
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// text/template's HTMLEscapeString.
pub(super) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// text/template's JSEscapeString.
pub(super) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c if !c.is_ascii() && !is_print(c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::*;

    fn s(x: &str) -> Val {
        Val::Str(x.to_owned())
    }

    #[test]
    fn go_number_formats() {
        assert_eq!(go_v(0.95), "0.95");
        assert_eq!(go_v(3.0), "3");
        assert_eq!(go_v(1e6), "1e+06");
        assert_eq!(go_v(123456.0), "123456");
        assert_eq!(go_v(1234567.0), "1.234567e+06");
        assert_eq!(go_v(0.0001), "0.0001");
        assert_eq!(go_v(0.00001), "1e-05");
        assert_eq!(go_g(1234.5678, Some(4), false), "1235");
        assert_eq!(go_g(12345.678, Some(4), false), "1.235e+04");
        assert_eq!(go_g(0.5, Some(4), false), "0.5");
    }

    /// Each expectation is what Prometheus 2.42 (Go 1.19) printed for the
    /// same `printf` in an alert annotation.
    #[test]
    fn printf_matches_go() {
        let (i, x, b) = (Val::Int, Val::Float, Val::Bool);
        let cases: Vec<(&str, Vec<Val>, &str)> = vec![
            ("%.2f", vec![x(1.005e3)], "1005.00"),
            ("%d items", vec![i(3)], "3 items"),
            ("%s/%v", vec![s("a"), x(0.5)], "a/0.5"),
            ("%5.1f|%-4s|%%", vec![x(3.125), s("ab")], "  3.1|ab  |%"),
            ("%g|%g", vec![x(100000.0), x(1e21)], "100000|1e+21"),
            // A mismatched verb prints the value with the verb's flags.
            ("%d", vec![x(3.0)], "%!d(float64=3)"),
            ("%.2f", vec![i(1)], "%!f(int=01)"),
            ("%s|%d", vec![i(2), b(true)], "%!s(int=2)|%!d(bool=true)"),
            (
                "%.0f|%5.1d|%6.2d",
                vec![s("3"), s("abc"), x(1.5)],
                "%!f(string=)|%!d(string=    a)|%!d(float64=   1.5)",
            ),
            (
                "%5d|%-5d|%05d",
                vec![i(42), i(42), i(42)],
                "   42|42   |00042",
            ),
            (
                "%x %X %o %b %c %U",
                vec![i(255), i(255), i(8), i(5), i(65), i(65)],
                "ff FF 10 101 A U+0041",
            ),
            (
                "%e %E %G",
                vec![x(1234.5), x(1234.5), x(1e-7)],
                "1.234500e+03 1.234500E+03 1E-07",
            ),
            (
                "%d|%d %d|%!",
                vec![],
                "%!d(MISSING)|%!d(MISSING) %!d(MISSING)|%!!(MISSING)",
            ),
            ("%s", vec![s("a"), s("b")], "a%!(EXTRA string=b)"),
            (
                "%6.2f|%-8.3e|%+d|% d",
                vec![x(3.14158), x(1234.5), i(5), i(5)],
                "  3.14|1.234e+03|+5| 5",
            ),
            (
                "%x|%X|% x|%#x|%.1x|%b",
                vec![x(255.5), x(1.0), s("hi"), s("hi"), s("hello"), x(1.0)],
                "0x1.ffp+07|0X1P+00|68 69|0x6869|68|4503599627370496p-52",
            ),
            (
                "%+.3e|%08.3f|%-8.2f|%+d|%x",
                vec![x(-1.5), x(-3.14158), x(2.5), i(-3), i(-255)],
                "-1.500e+00|-003.142|2.50    |-3|-ff",
            ),
            (
                "%*d|%-*d|%.*f",
                vec![i(5), i(42), i(4), i(7), i(2), x(3.14158)],
                "   42|7   |3.14",
            ),
            ("%[2]d %[1]d|%[3]d", vec![i(1), i(2)], "2 1|%!d(BADINDEX)"),
            (
                "%.*d|%*s",
                vec![i(-1), i(5), i(-4), s("ab")],
                "%!(BADPREC)5|ab  ",
            ),
            ("%v %v", vec![b(false), Val::Nil], "false <nil>"),
            (
                "%c|%q|%U|%#U|%08b|%o|%#o|%O",
                vec![i(65), i(65), i(233), i(233), i(5), i(8), i(8), i(8)],
                "A|'A'|U+00E9|U+00E9 'é'|00000101|10|010|0o10",
            ),
            (
                "%q|%+q|%#q|%.2s|%5.1s|%-5s|%05s",
                vec![
                    s("é\u{1}"),
                    s("é"),
                    s("a`b"),
                    s("héllo"),
                    s("xyz"),
                    s("ab"),
                    s("ab"),
                ],
                "\"é\\x01\"|\"\\u00e9\"|\"a`b\"|hé|    x|ab   |000ab",
            ),
            (
                "%6.2v|%.3v|%10v|%-10v|",
                vec![x(3.14158), s("abcdef"), x(1e6), b(true)],
                "   3.1|abc|     1e+06|true      |",
            ),
            (
                "% d|%+.2d|%.0d|%5.0d|",
                vec![i(5), i(3), i(0), i(0)],
                " 5|+03||     |",
            ),
            (
                "%e|%g|%G|%.3g|%#g|%#.3x",
                vec![x(0.0), x(1e-5), x(1e21), x(100000.0), x(1.0), x(1.0)],
                "0.000000e+00|1e-05|1E+21|1e+05|1.00000|0x1.000p+00",
            ),
            ("%5.1f%%", vec![x(12.345)], " 12.3%"),
        ];
        for (format, args, want) in cases {
            assert_eq!(sprintf(format, &args), want, "{format}");
        }
    }

    #[test]
    fn composite_values_print_as_go_prints_them() {
        let labels = Rc::new(BTreeMap::from([
            ("__name__".to_owned(), "x".to_owned()),
            ("i".to_owned(), "a".to_owned()),
        ]));
        let sample = Rc::new(QSample {
            labels: Rc::new(BTreeMap::from([
                ("__name__".to_owned(), "y".to_owned()),
                ("j".to_owned(), "b".to_owned()),
            ])),
            value: 7.0,
        });
        assert_eq!(
            sprintf("%v", &[Val::Sample(sample.clone())]),
            "&{map[__name__:y j:b] 7}"
        );
        assert_eq!(
            sprintf("%+v", &[Val::Sample(sample.clone())]),
            "&{Labels:map[__name__:y j:b] Value:7}"
        );
        assert_eq!(
            action_text(&Val::Sample(sample.clone())),
            "{map[__name__:y j:b] 7}"
        );
        assert_eq!(
            sprintf("%q", &[Val::Labels(labels.clone())]),
            "map[\"__name__\":\"x\" \"i\":\"a\"]"
        );
        assert_eq!(
            sprintf("%#v", &[Val::Labels(labels.clone())]),
            "map[string]string{\"__name__\":\"x\", \"i\":\"a\"}"
        );
        let args = Rc::new(BTreeMap::from([
            ("arg0".to_owned(), Val::Int(1)),
            ("arg1".to_owned(), s("x")),
            ("arg2".to_owned(), Val::Labels(labels.clone())),
        ]));
        assert_eq!(
            sprint(&[Val::Args(args)]),
            "map[arg0:1 arg1:x arg2:map[__name__:x i:a]]"
        );
        let root = Rc::new(RootData {
            labels,
            external_labels: Rc::new(BTreeMap::new()),
            external_url: "http://ext.example/prefix/".to_owned(),
            value: 3.0,
        });
        assert_eq!(
            action_text(&Val::Root(root)),
            "{map[__name__:x i:a] map[] http://ext.example/prefix/ 3}"
        );
        assert_eq!(
            sprint(&[Val::Int(1), Val::Int(2), s("a"), Val::Int(3)]),
            "1 2a3"
        );
        assert_eq!(sprintln(&[Val::Int(1), s("a"), Val::Int(2)]), "1 a 2\n");
        assert_eq!(action_text(&Val::Nil), "<no value>");
        assert_eq!(
            sprintf(
                "%T %T %T %T",
                &[Val::Int(1), Val::Float(1.5), s("a"), Val::Nil]
            ),
            "int float64 string <nil>"
        );
        assert_eq!(
            action_text(&Val::Time(1_435_065_584_128)),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
    }

    #[test]
    fn escapes_match_go() {
        assert_eq!(
            html_escape("<a href=\"x\">&' \0"),
            "&lt;a href=&#34;x&#34;&gt;&amp;&#39; \u{FFFD}"
        );
        assert_eq!(
            js_escape("<a>\"x\" 'y' \\ = & \n é"),
            "\\u003Ca\\u003E\\\"x\\\" \\'y\\' \\\\ \\u003D \\u0026 \\u000A é"
        );
        assert_eq!(query_escape("a b&c/é1"), "a+b%26c%2F%C3%A91");
    }
}
