//! The one table renderer, for `status` and the fleet's table: columns as wide as their
//! widest cell, two spaces apart, fitted to a terminal's width when there is one.
//!
//! Fitting follows what `ps` and `systemctl` do: text columns are first cut with `…` to a
//! width that still reads ([`Fit::Cut`]), then the columns an operator can do without are left
//! out, in an order each table chooses ([`Fit::Drop`]), and last the text columns are cut
//! further. A number is never cut ([`Fit::Keep`], or left out whole). Without a width (piped
//! output, `--full`) every column is whole.

use crate::terminal;

/// What a column may give up when the table is too wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Always shown whole.
    Keep,
    /// Left out when the table does not fit, lowest rank first.
    Drop(u8),
    /// Text that may be cut (with `…`): to this many columns before any column is left
    /// out, then down to its header's width.
    Cut(usize),
}

/// One column: its header and how it fits.
#[derive(Debug, Clone, Copy)]
pub struct Column<'a> {
    /// The header cell.
    pub header: &'a str,
    /// What it gives up to fit.
    pub fit: Fit,
}

/// A rendered table: its lines, and which columns it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line per row, the header first, each ending in `\n`.
    pub text: String,
    /// For each column, whether it is shown.
    pub shown: Vec<bool>,
}

/// Lay out `rows` under `columns` in at most `width` columns when given. `paint` may wrap a
/// shown cell (already padded) in colour: row index (0 is the first row after the header),
/// column index, cell.
pub fn render(
    columns: &[Column<'_>],
    rows: &[Vec<String>],
    width: Option<usize>,
    paint: impl Fn(usize, usize, String) -> String,
) -> Rendered {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.header.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut shown = vec![true; columns.len()];
    if let Some(limit) = width {
        fit(columns, &mut widths, &mut shown, limit);
    }
    let empty = String::new();
    let line = |cells: &[String], row: Option<usize>| {
        let mut l = String::new();
        let visible = columns
            .iter()
            .zip(cells.iter().chain(std::iter::repeat(&empty)))
            .zip(widths.iter().zip(&shown))
            .enumerate()
            .filter(|(_, (_, (_, shown)))| **shown);
        for (col, ((_, cell), (w, _))) in visible {
            if !l.is_empty() {
                l.push_str("  ");
            }
            let padded = format!("{:<w$}", terminal::cut(cell, *w), w = *w);
            l.push_str(&match row {
                Some(r) => paint(r, col, padded),
                None => padded,
            });
        }
        let mut l = l.trim_end().to_owned();
        l.push('\n');
        l
    };
    let header: Vec<String> = columns.iter().map(|c| c.header.to_owned()).collect();
    let mut text = line(&header, None);
    for (i, row) in rows.iter().enumerate() {
        text.push_str(&line(row, Some(i)));
    }
    Rendered { text, shown }
}

/// Leave out and cut columns until the table is at most `limit` wide (or nothing more may
/// give).
fn fit(columns: &[Column<'_>], widths: &mut [usize], shown: &mut [bool], limit: usize) {
    cut_text(columns, widths, shown, limit, |c| match c.fit {
        Fit::Cut(soft) => soft,
        _ => usize::MAX,
    });
    let mut droppable: Vec<(u8, usize)> = columns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match c.fit {
            Fit::Drop(rank) => Some((rank, i)),
            _ => None,
        })
        .collect();
    droppable.sort_unstable();
    for (_, i) in droppable {
        if total(widths, shown) <= limit {
            return;
        }
        if let Some(s) = shown.get_mut(i) {
            *s = false;
        }
    }
    // Last, the text columns, a column at a time, down to their headers.
    cut_text(columns, widths, shown, limit, |c| {
        c.header.chars().count().max(6)
    });
}

/// Cut each [`Fit::Cut`] column until the table fits `limit`, to no less than `floor`.
fn cut_text(
    columns: &[Column<'_>],
    widths: &mut [usize],
    shown: &[bool],
    limit: usize,
    floor: impl Fn(&Column<'_>) -> usize,
) {
    for (i, c) in columns.iter().enumerate() {
        let over = total(widths, shown).saturating_sub(limit);
        if over == 0 {
            return;
        }
        if matches!(c.fit, Fit::Cut(_)) {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).saturating_sub(over).max(floor(c).min(*w));
            }
        }
    }
}

/// The width of the shown columns, two spaces apart.
fn total(widths: &[usize], shown: &[bool]) -> usize {
    let cells: Vec<usize> = widths
        .iter()
        .zip(shown)
        .filter(|(_, s)| **s)
        .map(|(w, _)| *w)
        .collect();
    cells.iter().sum::<usize>() + 2 * cells.len().saturating_sub(1)
}

/// Humane units for table cells.
/// `2h 13m`, `45s`, `3d 4h`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `612.4 MiB`, `3.1 GiB`, `812.0 KiB`, `0 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[allow(clippy::cast_precision_loss)] // one decimal is all we print
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS.get(unit).copied().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<Column<'static>> {
        vec![
            Column {
                header: "NAME",
                fit: Fit::Keep,
            },
            Column {
                header: "UNIT",
                fit: Fit::Drop(1),
            },
            Column {
                header: "STATE",
                fit: Fit::Cut(20),
            },
            Column {
                header: "PID",
                fit: Fit::Keep,
            },
        ]
    }

    fn rows() -> Vec<Vec<String>> {
        vec![vec![
            "svg".into(),
            "imageserving-svg.service".into(),
            "failed (exit-code), gave up after 5 restarts".into(),
            "123456".into(),
        ]]
    }

    #[test]
    fn whole_without_a_width() {
        let r = render(&cols(), &rows(), None, |_, _, c| c);
        assert!(r.text.contains("imageserving-svg.service"));
        assert_eq!(r.shown, [true; 4]);
    }

    #[test]
    fn drops_then_cuts_and_never_cuts_a_number() {
        for width in [80, 60, 40, 30] {
            let r = render(&cols(), &rows(), Some(width), |_, _, c| c);
            for line in r.text.lines() {
                assert!(line.chars().count() <= width, "{width}: {line:?}");
            }
            assert!(r.text.contains("123456"), "{}", r.text);
            assert_eq!(
                width >= 60,
                r.text.contains("imageserving-svg"),
                "{}",
                r.text
            );
        }
        let r = render(&cols(), &rows(), Some(40), |_, _, c| c);
        assert!(r.text.contains("failed (exit-code),…"), "{}", r.text);
        assert_eq!(r.shown, [true, false, true, true]);
        // Text is cut to its soft width before a column is left out.
        let r = render(&cols(), &rows(), Some(60), |_, _, c| c);
        assert!(r.text.contains("imageserving-svg.service"), "{}", r.text);
    }
}
