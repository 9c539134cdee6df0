//! `adaftr plot`: a study's figures as PNG, drawn from its JSON lines (so a study can be
//! re-plotted, or several merged, without training again):
//! - `auc.png`: test AUC per variant (mean and one standard deviation over seeds), with the
//!   Bayes-optimal AUC of the generated test set where known;
//! - `tau-distribution.png`: the predicted tau over the test set per variant (seeds pooled);
//! - `tau-vs-relatedness.png`: mean tau per tenth of the test set sorted by true
//!   relatedness, with the 25th-75th percentile band (averaged over seeds).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use adaftr_core::metrics::mean_std;
use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use serde_json::Value;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// JSON lines written by `adaftr study --out` (repeat to merge studies).
    #[arg(long, required = true)]
    pub runs: Vec<PathBuf>,
    /// Folder for the PNG files (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: &Args) -> Result<()> {
    let mut runs = Vec::new();
    for path in &a.runs {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not a JSON line", path.display(), i + 1))?;
            if v["variant"].as_str().is_none() {
                bail!("{}:{}: no `variant` field; is this a file from `adaftr study --out`?", path.display(), i + 1);
            }
            runs.push(v);
        }
    }
    for p in write_all(&runs, &a.out)? {
        println!("wrote {}", p.display());
    }
    Ok(())
}

/// DejaVu Sans (Bitstream Vera licence, `assets/DejaVuSans.LICENSE`): the plots must not
/// depend on the fonts a machine happens to have.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        bail!("the embedded plot font could not be loaded")
    }
}

/// plotters' errors borrow their backend's error type; keep only the message.
fn drawing<T, E: std::fmt::Display>(r: std::result::Result<T, E>) -> Result<T> {
    r.map_err(|e| anyhow!("drawing failed: {e}"))
}

/// Runs grouped by variant, in the order variants first appear.
fn by_variant(runs: &[Value]) -> Vec<(String, Vec<&Value>)> {
    let mut groups: Vec<(String, Vec<&Value>)> = Vec::new();
    for r in runs {
        let name = r["variant"].as_str().unwrap_or("?").to_string();
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, g)) => g.push(r),
            None => groups.push((name, vec![r])),
        }
    }
    groups
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, position: SeriesLabelPosition, size: u32) -> Result<()> {
    drawing(
        chart
            .configure_series_labels()
            .position(position)
            .label_font((FAMILY, size))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw(),
    )
}

fn color(i: usize) -> RGBColor {
    let c = Palette99::pick(i).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// Writes every plot the runs have data for; returns the files written.
pub fn write_all(runs: &[Value], dir: &Path) -> Result<Vec<PathBuf>> {
    if runs.is_empty() {
        bail!("no runs to plot");
    }
    register_font()?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let groups = by_variant(runs);
    let mut written = vec![auc(&groups, &dir.join("auc.png"))?];
    if groups.iter().any(|(_, g)| g.iter().any(|r| r["tau_hist"].is_object())) {
        written.push(tau_distribution(&groups, &dir.join("tau-distribution.png"))?);
    }
    if groups.iter().any(|(_, g)| g.iter().any(|r| r["tau_by_rho"].is_array())) {
        written.push(tau_vs_relatedness(&groups, &dir.join("tau-vs-relatedness.png"))?);
    }
    Ok(written)
}

fn auc(groups: &[(String, Vec<&Value>)], path: &Path) -> Result<PathBuf> {
    let n = groups.len();
    let panel_h = 70 + 26 * n as u32;
    let root = BitMapBackend::new(path, (1000, 3 * panel_h + 40)).into_drawing_area();
    drawing(root.fill(&WHITE))?;
    let root = drawing(root.titled("Test AUC per variant (mean ± 1 sd over seeds)", (FAMILY, 22)))?;
    let panels = root.split_evenly((3, 1));
    let label_w = 12 + 8 * groups.iter().map(|(n, _)| n.len()).max().unwrap_or(4) as u32;
    for (panel, (metric, title)) in
        panels.iter().zip([("auc_ctr", "CTR"), ("auc_cvr", "CVR (clicked rows)"), ("auc_ctcvr", "CTCVR")])
    {
        let stats: Vec<Option<(f64, f64)>> = groups
            .iter()
            .map(|(_, g)| {
                let xs: Vec<f64> = g.iter().filter_map(|r| r[metric].as_f64()).collect();
                (!xs.is_empty()).then(|| mean_std(&xs))
            })
            .collect();
        let bayes = groups.iter().flat_map(|(_, g)| g.iter()).find_map(|r| r["bayes_auc"][&metric[4..]].as_f64());
        let lo = stats.iter().flatten().map(|(m, s)| m - s).fold(f64::INFINITY, f64::min);
        let hi = stats.iter().flatten().map(|(m, s)| m + s).chain(bayes).fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() || !hi.is_finite() {
            continue;
        }
        let pad = ((hi - lo) * 0.08).max(0.002);
        let mut chart = drawing(
            ChartBuilder::on(panel)
                .caption(title, (FAMILY, 17))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(label_w)
                .build_cartesian_2d((lo - pad)..(hi + pad), -0.5f64..(n as f64 - 0.5)),
        )?;
        let names: Vec<&str> = groups.iter().map(|(n, _)| n.as_str()).collect();
        let name_of = |y: &f64| {
            let i = y.round();
            if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].to_string()
            } else {
                String::new()
            }
        };
        drawing(
            chart
                .configure_mesh()
                .y_labels(n)
                .y_label_formatter(&name_of)
                .label_style((FAMILY, 13))
                .disable_y_mesh()
                .draw(),
        )?;
        for (i, s) in stats.iter().enumerate() {
            if let Some((m, sd)) = s {
                let y = i as f64;
                drawing(chart.draw_series(std::iter::once(ErrorBar::new_horizontal(
                    y,
                    m - sd,
                    *m,
                    m + sd,
                    color(i).stroke_width(2),
                    10,
                ))))?;
                drawing(chart.draw_series(std::iter::once(Circle::new((*m, y), 4, color(i).filled()))))?;
            }
        }
        if let Some(b) = bayes {
            drawing(
                chart.draw_series(LineSeries::new([(b, -0.5), (b, n as f64 - 0.5)], BLACK.mix(0.5).stroke_width(1))),
            )?
            .label(format!("Bayes-optimal {b:.4}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.mix(0.5)));
            legend(&mut chart, SeriesLabelPosition::LowerRight, 12)?;
        }
    }
    drawing(root.present())?;
    Ok(path.to_path_buf())
}

fn tau_distribution(groups: &[(String, Vec<&Value>)], path: &Path) -> Result<PathBuf> {
    let mut curves = Vec::new();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (gi, (name, g)) in groups.iter().enumerate() {
        let hists: Vec<&Value> = g.iter().map(|r| &r["tau_hist"]).filter(|h| h.is_object()).collect();
        let Some(first) = hists.first() else { continue };
        let (l, h) = (first["lo"].as_f64().unwrap_or(0.0), first["hi"].as_f64().unwrap_or(1.0));
        let mut counts: Vec<f64> = Vec::new();
        for hist in &hists {
            for (i, c) in hist["counts"].as_array().into_iter().flatten().enumerate() {
                if counts.len() <= i {
                    counts.resize(i + 1, 0.0);
                }
                counts[i] += c.as_f64().unwrap_or(0.0);
            }
        }
        let total: f64 = counts.iter().sum::<f64>().max(1.0);
        let width = (h - l) / counts.len().max(1) as f64;
        let pts: Vec<(f64, f64)> =
            counts.iter().enumerate().map(|(i, c)| (l + (i as f64 + 0.5) * width, c / total)).collect();
        lo = lo.min(l);
        hi = hi.max(h);
        curves.push((gi, format!("{name} ({} seeds)", hists.len()), pts));
    }
    let top = curves.iter().flat_map(|(_, _, p)| p.iter().map(|q| q.1)).fold(0.0, f64::max).max(1e-3) * 1.08;
    let root = BitMapBackend::new(path, (1000, 620)).into_drawing_area();
    drawing(root.fill(&WHITE))?;
    let mut chart = drawing(
        ChartBuilder::on(&root)
            .caption("Predicted tau on the test set", (FAMILY, 22))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(lo..hi, 0f64..top),
    )?;
    drawing(
        chart
            .configure_mesh()
            .x_desc("tau (bin of 1/40 of [tau_min, tau_max])")
            .y_desc("share of test instances")
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 15))
            .draw(),
    )?;
    for (gi, label, pts) in curves {
        let c = color(gi);
        drawing(chart.draw_series(LineSeries::new(pts, c.stroke_width(2))))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight, 13)?;
    drawing(root.present())?;
    Ok(path.to_path_buf())
}

fn tau_vs_relatedness(groups: &[(String, Vec<&Value>)], path: &Path) -> Result<PathBuf> {
    let mut curves = Vec::new();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (gi, (name, g)) in groups.iter().enumerate() {
        let per_seed: Vec<&Vec<Value>> =
            g.iter().filter_map(|r| r["tau_by_rho"].as_array()).filter(|a| !a.is_empty()).collect();
        if per_seed.is_empty() {
            continue;
        }
        let k = per_seed.iter().map(|a| a.len()).min().unwrap_or(0);
        let avg = |field: &str, j: usize| {
            per_seed.iter().filter_map(|a| a[j][field].as_f64()).sum::<f64>() / per_seed.len() as f64
        };
        let pts: Vec<(f64, f64, f64, f64)> =
            (0..k).map(|j| (avg("rho", j), avg("tau_p25", j), avg("tau_mean", j), avg("tau_p75", j))).collect();
        let spearman: Vec<f64> = g.iter().filter_map(|r| r["tau_spearman"].as_f64()).collect();
        let label = match spearman.is_empty() {
            true => name.clone(),
            false => {
                let (m, s) = mean_std(&spearman);
                format!("{name}: Spearman {m:+.3} ± {s:.3}")
            }
        };
        for (_, a, _, b) in &pts {
            lo = lo.min(*a);
            hi = hi.max(*b);
        }
        curves.push((gi, label, pts));
    }
    let pad = ((hi - lo) * 0.08).max(0.01);
    let shown = curves.len();
    let root = BitMapBackend::new(path, (1000, 620)).into_drawing_area();
    drawing(root.fill(&WHITE))?;
    let mut chart = drawing(
        ChartBuilder::on(&root)
            .caption("Predicted tau against the true relatedness (test set)", (FAMILY, 22))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..1f64, (lo - pad)..(hi + pad)),
    )?;
    drawing(
        chart
            .configure_mesh()
            .x_desc("true relatedness rho (mean of each tenth of the test set)")
            .y_desc("tau: mean, 25th-75th percentile")
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 15))
            .draw(),
    )?;
    for (k, (gi, label, pts)) in curves.into_iter().enumerate() {
        let c = color(gi);
        // Bands side by side rather than on top of each other.
        let dodge = 0.012 * (k as f64 - (shown as f64 - 1.0) / 2.0);
        let pts: Vec<(f64, f64, f64, f64)> = pts.into_iter().map(|(r, a, m, b)| (r + dodge, a, m, b)).collect();
        let bars = pts.iter().map(move |&(r, a, m, b)| ErrorBar::new_vertical(r, a, m, b, c.stroke_width(1), 8));
        drawing(chart.draw_series(bars))?;
        drawing(chart.draw_series(LineSeries::new(pts.iter().map(|&(r, _, m, _)| (r, m)), c.stroke_width(2))))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight, 13)?;
    drawing(root.present())?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn draws_all_three_plots_from_study_lines() {
        let dir = std::env::temp_dir().join(format!("adaftr-plot-test-{}", std::process::id()));
        let run = |variant: &str, seed: u64, tau: bool| {
            let mut v = json!({
                "variant": variant, "seed": seed, "auc_ctr": 0.70 + 0.001 * seed as f64, "auc_cvr": 0.66, "auc_ctcvr": 0.80,
                "bayes_auc": {"ctr": 0.75, "cvr": 0.81, "ctcvr": 0.90},
            });
            if tau {
                v["tau_hist"] = json!({"lo": 0.05, "hi": 1.0, "counts": [0, 5, 20, 40, 20, 5, 0, 0]});
                v["tau_by_rho"] = json!((0..10).map(|j| json!({"rho": 0.05 + 0.1 * j as f64, "tau_mean": 0.5 - 0.02 * j as f64, "tau_p25": 0.4, "tau_p75": 0.6})).collect::<Vec<_>>());
                v["tau_spearman"] = json!(-0.3);
            }
            v
        };
        let runs = vec![run("plain", 1, false), run("plain", 2, false), run("meta", 1, true), run("meta", 2, true)];
        let files = write_all(&runs, &dir).unwrap();
        assert_eq!(files.len(), 3);
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", f.display());
            assert!(bytes.len() > 5_000, "{} looks empty", f.display());
        }
        // Without tau there is only the AUC plot.
        assert_eq!(write_all(&runs[..2], &dir.join("plain")).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).ok();
    }
}
