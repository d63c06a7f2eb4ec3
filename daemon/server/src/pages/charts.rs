//! Inline SVG charts. Each is a `role="img"` figure with a `<title>` and a
//! `<desc>`, a `<title>` (tooltip) on every bar, and an HTML legend; the
//! page puts a table with the same numbers next to it. Colours come from
//! the stylesheet's `s-*` classes.

use super::html::{tpl, Html};

/// One stacked series: its legend name and its colour class (`s-…`).
pub struct Series {
    pub name: &'static str,
    pub class: &'static str,
}

fn legend(series: &[Series]) -> Html {
    let items: Html = series
        .iter()
        .map(|s| {
            tpl(
                "<li><span class=\"sw {}\" aria-hidden=\"true\"></span>{}</li>",
                &[&s.class, &s.name],
            )
        })
        .collect();
    tpl("<ul class=\"legend\">{}</ul>", &[&items])
}

/// A round upper bound for an axis (1, 2, 5 × 10ⁿ).
fn nice_max(v: u64) -> u64 {
    let v = v.max(1);
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step * m >= v {
                return step * m;
            }
        }
        step = step.saturating_mul(10);
    }
}

fn empty(title: &str) -> Html {
    tpl("<p class=\"empty\">{}: no data yet.</p>", &[&title])
}

/// Columns over a category axis (days), each stacked from `values[i][s]`.
pub fn stacked_columns(
    id: &'static str,
    title: &str,
    desc: &str,
    labels: &[String],
    series: &[Series],
    values: &[Vec<u64>],
) -> Html {
    let total = |i: usize| values[i].iter().sum::<u64>();
    let max = (0..labels.len()).map(total).max().unwrap_or(0);
    if max == 0 {
        return empty(title);
    }
    let top = nice_max(max);
    let (w, h) = (640.0_f64, 240.0_f64);
    let (left, right, upper, bottom) = (40.0, 8.0, 12.0, 34.0);
    let plot_w = w - left - right;
    let plot_h = h - upper - bottom;
    let slot = plot_w / labels.len() as f64;
    let bar = (slot * 0.68).max(2.0);
    let mut body = Html::new();
    let half = top / 2;
    let ticks: &[u64] = if half * 2 == top {
        &[0, half, top]
    } else {
        &[0, top]
    };
    for &tick in ticks {
        let y = upper + plot_h - plot_h * tick as f64 / top as f64;
        body.push(tpl(
            "<line class=\"grid\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            &[
                &fmt1(left),
                &fmt1(w - right),
                &fmt1(y),
                &fmt1(y),
                &fmt1(left - 6.0),
                &fmt1(y + 4.0),
                &tick,
            ],
        ));
    }
    let every = labels.len().div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = upper + plot_h;
        for (s, ser) in series.iter().enumerate() {
            let v = values[i].get(s).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let bh = plot_h * v as f64 / top as f64;
            y -= bh;
            body.push(tpl(
                "<rect class=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{}: {} {}</title></rect>",
                &[&ser.class, &fmt1(x), &fmt1(y), &fmt1(bar), &fmt1(bh), label, &v, &ser.name],
            ));
        }
        if i % every == 0 || i + 1 == labels.len() {
            body.push(tpl(
                "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                &[
                    &fmt1(x + bar / 2.0),
                    &fmt1(h - bottom + 18.0),
                    &short_day(label),
                ],
            ));
        }
    }
    tpl(
        "<figure class=\"chart\"><svg viewBox=\"0 0 640 240\" role=\"img\" aria-labelledby=\"{}-t {}-d\" \
         preserveAspectRatio=\"xMidYMid meet\"><title id=\"{}-t\">{}</title><desc id=\"{}-d\">{}</desc>{}</svg>{}</figure>",
        &[&id, &id, &id, &title, &id, &desc, &body, &legend(series)],
    )
}

/// Horizontal bars, one per row (label above its bar), stacked by series.
pub fn stacked_bars(
    id: &'static str,
    title: &str,
    desc: &str,
    rows: &[(String, Vec<u64>)],
    series: &[Series],
) -> Html {
    let max = rows
        .iter()
        .map(|(_, v)| v.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    if max == 0 {
        return empty(title);
    }
    let w = 480.0_f64;
    let row_h = 40.0_f64;
    let value_w = 56.0;
    let plot_w = w - value_w;
    let h = row_h * rows.len() as f64 + 4.0;
    let mut body = Html::new();
    for (i, (label, values)) in rows.iter().enumerate() {
        let y0 = row_h * i as f64;
        let total: u64 = values.iter().sum();
        body.push(tpl(
            "<text class=\"label\" x=\"0\" y=\"{}\">{}</text>",
            &[&fmt1(y0 + 15.0), &clip(label, 48)],
        ));
        let mut x = 0.0;
        for (s, ser) in series.iter().enumerate() {
            let v = values.get(s).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let bw = plot_w * v as f64 / max as f64;
            body.push(tpl(
                "<rect class=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"14\"><title>{}: {} {}</title></rect>",
                &[&ser.class, &fmt1(x), &fmt1(y0 + 21.0), &fmt1(bw), label, &v, &ser.name],
            ));
            x += bw;
        }
        body.push(tpl(
            "<text class=\"value\" x=\"{}\" y=\"{}\">{}</text>",
            &[&fmt1(x + 6.0), &fmt1(y0 + 33.0), &total],
        ));
    }
    let view = format!("0 0 480 {}", fmt1(h));
    tpl(
        "<figure class=\"chart bars\"><svg viewBox=\"{}\" role=\"img\" aria-labelledby=\"{}-t {}-d\">\
         <title id=\"{}-t\">{}</title><desc id=\"{}-d\">{}</desc>{}</svg>{}</figure>",
        &[&view, &id, &id, &id, &title, &id, &desc, &body, &legend(series)],
    )
}

fn fmt1(v: f64) -> String {
    let v = (v * 10.0).round() / 10.0;
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// `2026-05-03` → `05-03`.
fn short_day(day: &str) -> String {
    day.get(5..).unwrap_or(day).to_string()
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: [Series; 2] = [
        Series {
            name: "allowed",
            class: "s-allowed",
        },
        Series {
            name: "denied",
            class: "s-denied",
        },
    ];

    #[test]
    fn columns_are_labelled_and_scaled() {
        let labels = vec!["2026-05-01".to_string(), "2026-05-02".to_string()];
        let svg = stacked_columns(
            "t",
            "Verdicts",
            "per day",
            &labels,
            &TWO,
            &[vec![3, 1], vec![0, 0]],
        );
        let s = svg.as_str();
        assert!(s.contains("role=\"img\""));
        assert!(s.contains("<title id=\"t-t\">Verdicts</title>"));
        assert!(s.contains("<title>2026-05-01: 3 allowed</title>"));
        assert!(s.contains(">05-02<"));
        assert_eq!(s.matches("<rect").count(), 2);
        assert_eq!(nice_max(4), 5);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(0), 1);
        let none = stacked_columns(
            "t",
            "Verdicts",
            "",
            &labels,
            &TWO,
            &[vec![0, 0], vec![0, 0]],
        );
        assert!(none.as_str().contains("no data yet"));
    }

    #[test]
    fn bar_labels_are_escaped() {
        let rows = vec![("<script>x</script>".to_string(), vec![2, 2])];
        let svg = stacked_bars("b", "Top", "d", &rows, &TWO);
        assert!(!svg.as_str().contains("<script>"));
        assert!(svg
            .as_str()
            .contains("&lt;script&gt;x&lt;/script&gt;: 2 denied"));
    }
}
