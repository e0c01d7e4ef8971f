//! Charts drawn at generation time as inline SVG (they show without script and print
//! sharply): the per-site stacked bars, the fleet bar, the status breakdown and the trend.

use maud::{html, Markup};

use super::rows::{SiteCounts, Standing};
use super::TrendPoint;
use crate::record::Status;
use crate::StatusCounts;

/// Sites drawn in the per-site chart; beyond it those with most findings are drawn.
pub(super) const MAX_SITE_BARS: usize = 60;

const WIDTH: f64 = 960.0;
const LABEL_W: f64 = 230.0;
const BAR_X: f64 = 240.0;
const BAR_W: f64 = 600.0;
const ROW_H: f64 = 28.0;
const BAR_H: f64 = 18.0;

/// Standings in the order they are stacked, with their CSS class.
pub(super) const STACK: [Standing; 5] = [
    Standing::Compliant,
    Standing::NonCompliant,
    Standing::Waived,
    Standing::NotChecked,
    Standing::NoDesiredState,
];

fn fmt1(x: f64) -> String {
    format!("{x:.1}")
}

/// `name` cut to `max` characters with an ellipsis.
pub(super) fn cut(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_owned();
    }
    let mut s: String = name.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

pub(super) fn site_label(site: &str) -> &str {
    if site.is_empty() {
        "(no site)"
    } else {
        site
    }
}

fn findings(counts: &[u64; 5]) -> u64 {
    counts[Standing::NonCompliant.index()] + counts[Standing::NotChecked.index()]
}

/// One stacked bar per site (100 % wide: the share of each standing), the site's device
/// count at its end. Returns the chart and how many sites were left out.
pub(super) fn site_bars(sites: &[SiteCounts<'_>]) -> (Markup, usize) {
    let mut drawn: Vec<&SiteCounts<'_>> = sites.iter().collect();
    let left_out = drawn.len().saturating_sub(MAX_SITE_BARS);
    if left_out > 0 {
        drawn.sort_by(|a, b| {
            findings(&b.counts)
                .cmp(&findings(&a.counts))
                .then(a.name.cmp(b.name))
        });
        drawn.truncate(MAX_SITE_BARS);
        drawn.sort_by(|a, b| a.name.cmp(b.name));
    }
    let height = ROW_H * drawn.len() as f64 + 8.0;
    let chart = html! {
        svg.chart data-testid="site-chart" viewBox={ "0 0 " (WIDTH) " " (fmt1(height)) }
            width="100%" role="img" aria-label="Devices per site by compliance" {
            @for (row, site) in drawn.iter().enumerate() {
                @let counts = &site.counts;
                @let total: u64 = counts.iter().sum();
                @let y = ROW_H * row as f64 + 4.0;
                g.site data-testid="site-bar" data-site=(site.name) data-total=(total) {
                    title { (site_label(site.name)) ": " (total) " devices — " (breakdown(counts)) }
                    text.label x=(LABEL_W) y=(fmt1(y + BAR_H - 4.0)) text-anchor="end" {
                        (cut(site_label(site.name), 32))
                    }
                    rect.track x=(BAR_X) y=(fmt1(y)) width=(BAR_W) height=(BAR_H) rx="3" {}
                    (stacked(counts, total, BAR_X, y, BAR_W, BAR_H))
                    text.count x=(BAR_X + BAR_W + 10.0) y=(fmt1(y + BAR_H - 4.0)) {
                        (thousands(total))
                    }
                }
            }
        }
    };
    (chart, left_out)
}

/// The segments of one stacked bar.
fn stacked(counts: &[u64; 5], total: u64, x0: f64, y: f64, w: f64, h: f64) -> Markup {
    let mut segments = Vec::with_capacity(STACK.len());
    let mut x = x0;
    for standing in STACK {
        let n = counts[standing.index()];
        if n > 0 && total > 0 {
            let seg = w * n as f64 / total as f64;
            segments.push((standing, n, x, seg));
            x += seg;
        }
    }
    html! {
        @for (standing, n, x, seg) in segments {
            rect class={ "seg " (standing.as_str()) } data-standing=(standing.as_str())
                data-count=(n) x=(fmt1(x)) y=(fmt1(y)) width=(fmt1(seg)) height=(h) {
                title { (standing.label()) ": " (thousands(n)) }
            }
        }
    }
}

/// `12 compliant, 3 non-compliant, …`, non-zero standings only.
pub(super) fn breakdown(counts: &[u64; 5]) -> String {
    let parts: Vec<String> = STACK
        .iter()
        .filter(|s| counts[s.index()] > 0)
        .map(|s| {
            format!(
                "{} {}",
                thousands(counts[s.index()]),
                s.label().to_lowercase()
            )
        })
        .collect();
    if parts.is_empty() {
        "no devices".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The whole fleet as one stacked bar.
pub(super) fn fleet_bar(counts: &[u64; 5]) -> Markup {
    let total: u64 = counts.iter().sum();
    html! {
        svg.chart.fleet-bar data-testid="fleet-bar" viewBox="0 0 960 24" width="100%"
            preserveAspectRatio="none" role="img" aria-label={ "Fleet: " (breakdown(counts)) } {
            rect.track x="0" y="0" width="960" height="24" rx="4" {}
            (stacked(counts, total, 0.0, 0.0, 960.0, 24.0))
        }
    }
}

/// One bar per status that occurred, longest first, scaled to the largest.
pub(super) fn status_bars(by_status: &StatusCounts) -> Markup {
    let mut statuses: Vec<(Status, u64)> = by_status.iter().filter(|&(_, n)| n > 0).collect();
    statuses.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let max = statuses.first().map_or(1, |s| s.1).max(1);
    let total: u64 = statuses.iter().map(|s| s.1).sum::<u64>().max(1);
    let height = 26.0 * statuses.len() as f64 + 4.0;
    html! {
        svg.chart data-testid="status-chart" viewBox={ "0 0 " (WIDTH) " " (fmt1(height)) }
            width="100%" role="img" aria-label="Devices by status" {
            @for (row, (status, n)) in statuses.iter().enumerate() {
                @let y = 26.0 * row as f64 + 2.0;
                @let w = (BAR_W * *n as f64 / max as f64).max(2.0);
                g data-status=(status.as_str()) data-count=(n) {
                    text.label x=(LABEL_W) y=(fmt1(y + 14.0)) text-anchor="end" { (status.as_str()) }
                    rect class={ "seg " (if *status == Status::Ok { "ok" } else { "not_checked" }) }
                        x=(BAR_X) y=(fmt1(y)) width=(fmt1(w)) height="18" rx="2" {}
                    text.count x=(fmt1(BAR_X + w + 8.0)) y=(fmt1(y + 14.0)) {
                        (thousands(*n)) " (" (percent(*n, total)) ")"
                    }
                }
            }
        }
    }
}

/// A line of the trend: its CSS class, its name and its value at a point.
type Series = (&'static str, &'static str, fn(&TrendPoint) -> u64);

/// Compliant devices and SSH-enabled devices over the runs, oldest first, on one device
/// axis (with the fleet size as a dashed line).
pub(super) fn trend(points: &[TrendPoint]) -> Markup {
    let (w, h) = (WIDTH, 280.0);
    let (left, right, top, bottom) = (72.0, 56.0, 16.0, 52.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = points.iter().map(|p| p.devices).max().unwrap_or(0);
    let y_max = nice_ceiling(max);
    let x_of = |i: usize| {
        if points.len() <= 1 {
            left + plot_w / 2.0
        } else {
            left + plot_w * i as f64 / (points.len() - 1) as f64
        }
    };
    let y_of = |v: u64| top + plot_h - plot_h * v as f64 / y_max as f64;
    let line = |value: fn(&TrendPoint) -> u64| -> String {
        points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{},{}", fmt1(x_of(i)), fmt1(y_of(value(p)))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let label_every = points.len().div_ceil(12).max(1);
    let series: [Series; 3] = [
        ("devices", "Devices", |p| p.devices),
        ("compliant", "Compliant", |p| p.compliant),
        ("ssh", "SSH enabled", |p| p.ssh_enabled),
    ];
    html! {
        svg.chart.trend data-testid="trend-chart" data-points=(points.len())
            viewBox={ "0 0 " (w) " " (h) } width="100%" role="img"
            aria-label="Compliant and SSH-enabled devices over the last runs" {
            @for step in 0..=4u64 {
                @let v = y_max * step / 4;
                @let y = y_of(v);
                line.grid x1=(left) x2=(w - right) y1=(fmt1(y)) y2=(fmt1(y)) {}
                text.axis x=(left - 8.0) y=(fmt1(y + 4.0)) text-anchor="end" { (thousands(v)) }
            }
            @for (i, p) in points.iter().enumerate() {
                @if i % label_every == 0 || i + 1 == points.len() {
                    text.axis x=(fmt1(x_of(i))) y=(h - bottom + 18.0) text-anchor="middle" { (p.label) }
                    text.axis.sub x=(fmt1(x_of(i))) y=(h - bottom + 34.0) text-anchor="middle" { (p.when) }
                }
            }
            @for (class, name, value) in series {
                @if points.len() > 1 {
                    polyline class={ "series " (class) } points=(line(value)) {}
                }
                @for (i, p) in points.iter().enumerate() {
                    circle class={ "dot " (class) } cx=(fmt1(x_of(i))) cy=(fmt1(y_of(value(p)))) r="4" {
                        title { (p.label) " " (p.when) ": " (name) " " (thousands(value(p))) }
                    }
                }
            }
        }
    }
}

/// The top of a device axis of four equal steps: four times the smallest 1, 2, 2.5 or
/// 5 × 10ⁿ step that reaches `v` (so every gridline is a round number).
fn nice_ceiling(v: u64) -> u64 {
    let step_needed = v.div_ceil(4).max(1);
    let mut base = 1u64;
    loop {
        let candidates = [base, base * 2, base * 5 / 2, base * 5];
        for step in candidates {
            if step >= step_needed {
                return step.saturating_mul(4);
            }
        }
        match base.checked_mul(10) {
            Some(next) if next <= u64::MAX / 40 => base = next,
            _ => return v,
        }
    }
}

/// `12,345`.
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` of `total` as a percentage with one decimal (`72.4%`); `—` of nothing.
pub(super) fn percent(n: u64, total: u64) -> String {
    if total == 0 {
        return "—".to_owned();
    }
    format!("{:.1}%", n as f64 * 100.0 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(0, 0), "—");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceiling(0), 4);
        assert_eq!(nice_ceiling(3), 4);
        assert_eq!(nice_ceiling(7), 8);
        assert_eq!(nice_ceiling(9), 20);
        assert_eq!(nice_ceiling(1000), 1000);
        assert_eq!(nice_ceiling(1001), 2000);
        assert_eq!(nice_ceiling(100_000), 100_000);
    }

    #[test]
    fn every_site_gets_one_group_until_the_cap() {
        let names: Vec<String> = (0..MAX_SITE_BARS + 5)
            .map(|i| format!("site-{i:03}"))
            .collect();
        let borrowed: Vec<SiteCounts<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, name)| SiteCounts {
                index: i as u32,
                name,
                counts: [1, i as u64, 0, 0, 0],
            })
            .collect();
        let (chart, left_out) = site_bars(&borrowed[..3]);
        assert_eq!(left_out, 0);
        assert_eq!(chart.0.matches("data-testid=\"site-bar\"").count(), 3);
        let (chart, left_out) = site_bars(&borrowed);
        assert_eq!(left_out, 5);
        assert_eq!(
            chart.0.matches("data-testid=\"site-bar\"").count(),
            MAX_SITE_BARS
        );
        // The sites with fewest findings are the ones left out.
        assert!(!chart.0.contains("site-000"));
    }
}
