//! How far back in time an expression reads, so the series store keeps
//! exactly the window the loaded rules need and no more.

use promql_parser::parser::{Expr, Offset};

use super::LOOKBACK_MS;
use crate::duration::Millis;

fn offset_ms(o: &Option<Offset>) -> Millis {
    match o {
        // Reading the future needs no history.
        Some(Offset::Pos(d)) => d.as_millis() as Millis,
        Some(Offset::Neg(_)) | None => 0,
    }
}

/// The furthest before evaluation time any selector in `expr` reads: the
/// 5m lookback for instant selectors, the range for range selectors, plus
/// positive offsets, and for subqueries their range on top of what the
/// inner expression reads. `@` pins a selector to a fixed time, which no
/// window can promise; it is counted as if it were absent.
pub fn max_lookback(expr: &Expr) -> Millis {
    match expr {
        Expr::VectorSelector(vs) => LOOKBACK_MS + offset_ms(&vs.offset),
        Expr::MatrixSelector(ms) => ms.range.as_millis() as Millis + offset_ms(&ms.vs.offset),
        Expr::Subquery(sq) => {
            sq.range.as_millis() as Millis + offset_ms(&sq.offset) + max_lookback(&sq.expr)
        }
        Expr::Aggregate(a) => max_lookback(&a.expr).max(a.param.as_deref().map_or(0, max_lookback)),
        Expr::Unary(u) => max_lookback(&u.expr),
        Expr::Binary(b) => max_lookback(&b.lhs).max(max_lookback(&b.rhs)),
        Expr::Paren(p) => max_lookback(&p.expr),
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .map(|a| max_lookback(a))
            .max()
            .unwrap_or(0),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => 0,
    }
}

/// Whether `expr` reads a range of samples anywhere (`rate(x[5m])`, a
/// subquery): one scrape cannot answer it.
pub fn reads_ranges(expr: &Expr) -> bool {
    match expr {
        Expr::MatrixSelector(_) | Expr::Subquery(_) => true,
        Expr::VectorSelector(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::Extension(_) => false,
        Expr::Aggregate(a) => reads_ranges(&a.expr) || a.param.as_deref().is_some_and(reads_ranges),
        Expr::Unary(u) => reads_ranges(&u.expr),
        Expr::Binary(b) => reads_ranges(&b.lhs) || reads_ranges(&b.rhs),
        Expr::Paren(p) => reads_ranges(&p.expr),
        Expr::Call(c) => c.args.args.iter().any(|a| reads_ranges(a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::parse;

    #[test]
    fn ranges_are_found_wherever_they_are() {
        let r = |q: &str| reads_ranges(&parse(q).unwrap());
        assert!(!r("max(live_room_capacity) * 60"));
        assert!(r("sum(rate(live_join_requests_total[1m])) * 60"));
        assert!(r("max_over_time(up[5m:1m])"));
        assert!(r("1 - quantile(0.9, -deriv(x[2m]))"));
        assert!(!r("vector(1)"));
    }

    fn lb(q: &str) -> Millis {
        max_lookback(&parse(q).unwrap())
    }

    #[test]
    fn lookback_covers_ranges_offsets_and_subqueries() {
        assert_eq!(lb("up"), 300_000);
        assert_eq!(lb("1 + 2"), 0);
        assert_eq!(lb("rate(x[10m])"), 600_000);
        assert_eq!(lb("rate(x[10m] offset 1h)"), 600_000 + 3_600_000);
        assert_eq!(lb("x offset -5m"), 300_000);
        assert_eq!(
            lb(
                "predict_linear(live_room_listeners[2m], 600) > on(room) group_left live_room_capacity * 0.95"
            ),
            300_000
        );
        assert_eq!(lb("max_over_time(rate(x[1m])[30m:1m])"), 1_800_000 + 60_000);
        assert_eq!(lb("sum by (a) (rate(x[15m]))"), 900_000);
        assert_eq!(lb("quantile_over_time(0.9, x[20m])"), 1_200_000);
    }
}
