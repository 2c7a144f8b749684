//! The campaign's records (CSV, one row per injection, enough to replay it), the Markdown
//! report and the SVG plots.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::classify::{OUTCOMES, Outcome};
use super::inject::{Kind, Plan};

/// One injection's row.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub component: String,
    pub seed: u64,
    pub plan: Plan,
    /// Where it was injected (PC), 0 if unknown.
    pub pc: u64,
    pub outcome: Outcome,
    pub detect_ms: Option<u64>,
    pub recover_ms: Option<u64>,
    pub wall_ms: u64,
    pub what: String,
    pub why: String,
}

pub const HEADER: &str =
    "id,component,seed,kind,hit,steps,loc,bit,pc,outcome,detect_ms,recover_ms,wall_ms,what,why";

/// A CSV field, quoted when it has to be (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"").replace(['\n', '\r'], " "))
    } else {
        s.to_string()
    }
}

/// Splits one CSV line into fields (quoted fields may hold commas and `""`).
fn split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

impl Record {
    pub fn to_csv(&self) -> String {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{:#x},{},{:#x},{},{},{},{},{},{}",
            self.plan.id,
            field(&self.component),
            self.seed,
            self.plan.kind,
            self.plan.hit,
            self.plan.steps,
            self.plan.loc,
            self.plan.bit,
            self.pc,
            self.outcome,
            opt(self.detect_ms),
            opt(self.recover_ms),
            self.wall_ms,
            field(&self.what),
            field(&self.why),
        )
    }

    pub fn from_csv(line: &str) -> Result<Record, String> {
        let f = split(line);
        if f.len() != 15 {
            return Err(format!("{} fields, not 15: {line:?}", f.len()));
        }
        let num = |s: &str| -> Result<u64, String> {
            match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => s.parse(),
            }
            .map_err(|e| format!("{s:?}: {e}"))
        };
        let opt = |s: &str| -> Result<Option<u64>, String> {
            if s.is_empty() {
                Ok(None)
            } else {
                num(s).map(Some)
            }
        };
        Ok(Record {
            component: f[1].clone(),
            seed: num(&f[2])?,
            plan: Plan {
                id: num(&f[0])?,
                kind: Kind::parse(&f[3]).ok_or_else(|| format!("kind {:?}", f[3]))?,
                hit: num(&f[4])?,
                steps: num(&f[5])?,
                loc: num(&f[6])?,
                bit: num(&f[7])? as u8,
            },
            pc: num(&f[8])?,
            outcome: Outcome::parse(&f[9]).ok_or_else(|| format!("outcome {:?}", f[9]))?,
            detect_ms: opt(&f[10])?,
            recover_ms: opt(&f[11])?,
            wall_ms: num(&f[12])?,
            what: f[13].clone(),
            why: f[14].clone(),
        })
    }
}

/// Reads a campaign's CSV (header first); a torn last line (the campaign was killed while
/// writing it) is dropped.
pub fn read_csv(text: &str) -> Result<Vec<Record>, String> {
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h == HEADER => {}
        Some(h) => return Err(format!("not a campaign CSV (header {h:?})")),
        None => return Ok(Vec::new()),
    }
    let rows: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let complete = text.ends_with('\n');
    let mut out = Vec::new();
    for (i, l) in rows.iter().enumerate() {
        match Record::from_csv(l) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == rows.len() && !complete => {}
            Err(e) => return Err(format!("line {}: {e}", i + 2)),
        }
    }
    Ok(out)
}

/// Wilson score interval for `k` successes out of `n`, 95% (z = 1.96).
pub fn wilson(k: u64, n: u64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let z = 1.96f64;
    let n = n as f64;
    let p = k as f64 / n;
    let d = 1.0 + z * z / n;
    let c = (p + z * z / (2.0 * n)) / d;
    let h = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / d;
    Some(((c - h).max(0.0), (c + h).min(1.0)))
}

/// Outcome counts per (component, kind).
pub fn table(records: &[Record]) -> BTreeMap<(String, Kind), BTreeMap<Outcome, u64>> {
    let mut t: BTreeMap<(String, Kind), BTreeMap<Outcome, u64>> = BTreeMap::new();
    for r in records {
        *t.entry((r.component.clone(), r.plan.kind))
            .or_default()
            .entry(r.outcome)
            .or_default() += 1;
    }
    t
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// The Markdown report: per component × kind, the count of every class and the success rate
/// over detected failures (recovered / (recovered + recovery failed)) with its Wilson
/// interval; then the totals per component and the latencies.
pub fn markdown(records: &[Record]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| component | kind | n | {} | success over detected (95% CI) |",
        OUTCOMES.map(|o| o.name()).join(" | ")
    );
    let _ = writeln!(s, "|{}", "---|".repeat(4 + OUTCOMES.len()));
    let t = table(records);
    let mut totals: BTreeMap<String, BTreeMap<Outcome, u64>> = BTreeMap::new();
    let row = |s: &mut String, comp: &str, kind: &str, counts: &BTreeMap<Outcome, u64>| {
        let n: u64 = counts.values().sum();
        let get = |o| counts.get(&o).copied().unwrap_or(0);
        let ok = get(Outcome::Recovered);
        let det = ok + get(Outcome::RecoveryFailed);
        let rate = match wilson(ok, det) {
            Some((lo, hi)) => format!(
                "{} ({ok}/{det}; {} – {})",
                pct(ok as f64 / det as f64),
                pct(lo),
                pct(hi)
            ),
            None => "– (none detected)".into(),
        };
        let _ = writeln!(
            s,
            "| {comp} | {kind} | {n} | {} | {rate} |",
            OUTCOMES.map(|o| get(o).to_string()).join(" | ")
        );
    };
    for ((comp, kind), counts) in &t {
        row(&mut s, comp, kind.name(), counts);
        let tot = totals.entry(comp.clone()).or_default();
        for (o, c) in counts {
            *tot.entry(*o).or_default() += c;
        }
    }
    for (comp, counts) in &totals {
        row(&mut s, &format!("**{comp}**"), "**all**", counts);
    }
    let mut det: Vec<u64> = records.iter().filter_map(|r| r.detect_ms).collect();
    let mut rec: Vec<u64> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Recovered)
        .filter_map(|r| r.recover_ms)
        .collect();
    det.sort_unstable();
    rec.sort_unstable();
    let q = |v: &[u64], f: f64| {
        if v.is_empty() {
            "–".to_string()
        } else {
            v[((v.len() - 1) as f64 * f).round() as usize].to_string()
        }
    };
    let _ = writeln!(
        s,
        "\nLatency from the injection (host wall-clock ms, polled; the gdb campaign runs QEMU under -icount shift=0): \
         detection (the monitor's first decision) median {} p90 {} max {} over {}; \
         recovery (the restarted PD serving again, recovered runs) median {} p90 {} max {} over {}.",
        q(&det, 0.5),
        q(&det, 0.9),
        q(&det, 1.0),
        det.len(),
        q(&rec, 0.5),
        q(&rec, 0.9),
        q(&rec, 1.0),
        rec.len()
    );
    s
}

/// One colour per outcome class, in [`OUTCOMES`] order: grey for nothing happened, green
/// for recovered, then the failures from the mild to the worst.
const COLOURS: [RGBColor; 6] = [
    RGBColor(0x9e, 0x9e, 0x9e),
    RGBColor(0x2e, 0x7d, 0x32),
    RGBColor(0xef, 0x6c, 0x00),
    RGBColor(0x6a, 0x1b, 0x9a),
    RGBColor(0xc6, 0x28, 0x28),
    RGBColor(0x00, 0x00, 0x00),
];

/// Stacked bars of the outcome shares per component and fault kind, as SVG.
pub fn svg_outcomes(records: &[Record]) -> String {
    let t: Vec<_> = table(records).into_iter().collect();
    let rows = t.len().max(1);
    let mut svg = String::new();
    let (w, h) = (980, 110 + 28 * rows as u32);
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        // The bars above, the legend in the bottom strip.
        let (top, legend) = root.split_vertically(h - 30);
        let mut chart = ChartBuilder::on(&top)
            .caption("Outcome share per fault kind", ("sans-serif", 16))
            .margin(10)
            .margin_right(30)
            .x_label_area_size(25)
            .y_label_area_size(230)
            .build_cartesian_2d(0f64..1f64, 0f64..rows as f64)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(5)
            .x_label_formatter(&|x| format!("{:.0}%", x * 100.0))
            .y_labels(0)
            .draw()?;
        let label = ("sans-serif", 12)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (i, ((comp, kind), counts)) in t.iter().enumerate() {
            // Row i from the top spans [rows - i - 1, rows - i).
            let y = (rows - i - 1) as f64;
            let n: u64 = counts.values().sum();
            let (px, py) = chart.backend_coord(&(0.0, y + 0.5));
            top.draw(&Text::new(
                format!("{comp} {kind} (n={n})"),
                (px - 8, py),
                label.clone(),
            ))?;
            let mut before = 0;
            for (j, o) in OUTCOMES.iter().enumerate() {
                let c = counts.get(o).copied().unwrap_or(0);
                if c == 0 {
                    continue;
                }
                let (x0, x1) = (before as f64 / n as f64, (before + c) as f64 / n as f64);
                before += c;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0, y + 0.15), (x1, y + 0.85)],
                    COLOURS[j].filled(),
                )))?;
            }
        }
        let text = ("sans-serif", 12)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (j, o) in OUTCOMES.iter().enumerate() {
            let x = 240 + 120 * j as i32;
            legend.draw(&Rectangle::new(
                [(x, 10), (x + 10, 20)],
                COLOURS[j].filled(),
            ))?;
            legend.draw(&Text::new(o.to_string(), (x + 14, 15), text.clone()))?;
        }
        root.present()?;
        Ok(())
    })();
    drawn
        .map(|_| svg)
        .unwrap_or_else(|e| plot_error(&e.to_string()))
}

/// The empirical CDF of recovery latency (recovered runs), as SVG, on a logarithmic time
/// axis: restarts after a fault take milliseconds, after a hang seconds.
pub fn svg_latency_cdf(records: &[Record]) -> String {
    let mut v: Vec<u64> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Recovered)
        .filter_map(|r| r.recover_ms)
        .map(|ms| ms.max(1))
        .collect();
    v.sort_unstable();
    // Whole decades from 1 ms to the one above the largest value.
    let top = 10f64.powi((v.last().copied().unwrap_or(1) as f64).log10().floor() as i32 + 1);
    let mut svg = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (640, 380)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "Recovery latency CDF ({} recovered runs; wall-clock ms, log scale)",
                    v.len()
                ),
                ("sans-serif", 14),
            )
            .margin(10)
            .margin_right(30)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d((1f64..top).log_scale(), 0f64..1f64)?;
        chart
            .configure_mesh()
            .x_desc("recovery latency (ms)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("fraction of recovered runs")
            .draw()?;
        // A step function: at each latency the fraction jumps by 1/n.
        let n = v.len() as f64;
        let steps = v.iter().enumerate().flat_map(|(i, &ms)| {
            let x = ms as f64;
            [(x, i as f64 / n), (x, (i + 1) as f64 / n)]
        });
        chart.draw_series(LineSeries::new(
            std::iter::once((1.0, 0.0)).chain(steps),
            COLOURS[1].stroke_width(2),
        ))?;
        root.present()?;
        Ok(())
    })();
    drawn
        .map(|_| svg)
        .unwrap_or_else(|e| plot_error(&e.to_string()))
}

/// A plot that could not be drawn still leaves a valid file saying why.
fn plot_error(why: &str) -> String {
    let why = why.replace('&', "&amp;").replace('<', "&lt;");
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"40\">\
         <text x=\"10\" y=\"25\">plot failed: {why}</text></svg>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, kind: Kind, outcome: Outcome, recover: Option<u64>) -> Record {
        Record {
            component: "serial_driver".into(),
            seed: 7,
            plan: Plan {
                id,
                kind,
                hit: 3,
                steps: 17,
                loc: 0x0200_10c0,
                bit: 5,
            },
            pc: 0x20_4910,
            outcome,
            detect_ms: recover.map(|r| r / 2),
            recover_ms: recover,
            wall_ms: 4000,
            what: "x3 bit 5: 0x0 -> 0x20".into(),
            why: "client_a did not finish; \"quoted\", with commas".into(),
        }
    }

    #[test]
    fn csv_rows_round_trip_and_a_torn_last_line_is_dropped() {
        let rs = [
            rec(0, Kind::Reg, Outcome::Recovered, Some(40)),
            rec(1, Kind::Ring, Outcome::RecoveryFailed, None),
        ];
        let mut text = format!("{HEADER}\n");
        for r in &rs {
            text.push_str(&r.to_csv());
            text.push('\n');
        }
        assert_eq!(read_csv(&text).unwrap(), rs);
        let torn = format!("{text}2,serial_driver,7,reg,1");
        assert_eq!(read_csv(&torn).unwrap(), rs);
        assert!(read_csv("a,b\n").is_err());
    }

    #[test]
    fn wilson_intervals_match_published_values() {
        // 95% Wilson for 8/10: 0.490 – 0.943 (Newcombe 1998 style tables).
        let (lo, hi) = wilson(8, 10).unwrap();
        assert!(
            (lo - 0.4902).abs() < 1e-3 && (hi - 0.9433).abs() < 1e-3,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(10, 10).unwrap();
        assert!((lo - 0.7225).abs() < 1e-3 && hi == 1.0, "{lo} {hi}");
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn the_report_counts_every_class_and_rates_over_detected() {
        let rs = vec![
            rec(0, Kind::Reg, Outcome::Recovered, Some(40)),
            rec(1, Kind::Reg, Outcome::Recovered, Some(60)),
            rec(2, Kind::Reg, Outcome::RecoveryFailed, None),
            rec(3, Kind::Reg, Outcome::NotManifested, None),
            rec(4, Kind::Pc, Outcome::Undetected, None),
        ];
        let md = markdown(&rs);
        assert!(
            md.contains("| serial_driver | reg | 4 | 1 | 2 | 1 | 0 | 0 | 0 | 66.7% (2/3;"),
            "{md}"
        );
        assert!(
            md.contains("| serial_driver | pc | 1 | 0 | 0 | 0 | 1 | 0 | 0 | – (none detected) |"),
            "{md}"
        );
        assert!(md.contains("| **serial_driver** | **all** | 5 |"), "{md}");
        let bars = svg_outcomes(&rs);
        assert!(bars.starts_with("<svg"), "{bars}");
        // A row per component and kind, a legend entry per outcome class.
        assert!(bars.contains("serial_driver reg (n=4)"), "{bars}");
        assert!(bars.contains("serial_driver pc (n=1)"), "{bars}");
        for o in OUTCOMES {
            assert!(bars.contains(&o.to_string()), "{o} missing: {bars}");
        }
        // One bar segment per class present in a row, one legend key per class: recovered
        // (green) once in the reg row, undetected (purple) once in the pc row.
        assert_eq!(bars.matches("fill=\"#2E7D32\"").count(), 2, "{bars}");
        assert_eq!(bars.matches("fill=\"#6A1B9A\"").count(), 2, "{bars}");
        assert_eq!(bars.matches("fill=\"#C62828\"").count(), 1, "{bars}");
        let cdf = svg_latency_cdf(&rs);
        assert!(
            cdf.starts_with("<svg") && cdf.contains("2 recovered runs"),
            "{cdf}"
        );
        assert!(cdf.contains("<polyline"), "{cdf}");
    }
}
