//! Writing a run's results into a directory: `summary.json`, `timeseries.csv`, and a chart
//! (PNG and SVG) of each series: availability, files lost, shares per file, repair traffic.

use super::plot::{Chart, Line, PlotError};
use super::runner::Outcome;
use super::series::{to_csv, Sample};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Why results could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {path}: {source} (check that the directory is writable)")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Plot(#[from] PlotError),
}

/// The files [`write`] creates, by name.
pub const FILES: [&str; 10] = [
    "summary.json",
    "timeseries.csv",
    "availability.png",
    "availability.svg",
    "files_lost.png",
    "files_lost.svg",
    "shares_per_file.png",
    "shares_per_file.svg",
    "repair_traffic.png",
    "repair_traffic.svg",
];

/// Writes every output of `outcome` into `dir` (created if missing).
pub fn write(dir: &Path, outcome: &Outcome) -> Result<(), OutputError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OutputError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let summary = dir.join("summary.json");
    let json = serde_json::to_string_pretty(&outcome.summary).map_err(io::Error::from);
    fs::write(&summary, json.map_err(io_err(&summary))? + "\n").map_err(io_err(&summary))?;
    let csv = dir.join("timeseries.csv");
    fs::write(&csv, to_csv(&outcome.series)).map_err(io_err(&csv))?;
    for (name, chart) in charts(&outcome.series, &outcome.summary.parameters_line()) {
        chart.save(&dir.join(name))?;
    }
    Ok(())
}

fn line(label: &str, series: &[Sample], y: impl Fn(&Sample) -> f64) -> Line {
    Line {
        label: label.to_string(),
        points: series.iter().map(|s| (s.day, y(s))).collect(),
    }
}

fn chart(title: &str, subtitle: &str, y_label: &str, lines: Vec<Line>) -> Chart {
    Chart {
        title: title.to_string(),
        x_label: format!("simulated day  ({subtitle})"),
        y_label: y_label.into(),
        lines,
        markers: false,
    }
}

/// The four charts of a run.
fn charts(s: &[Sample], subtitle: &str) -> Vec<(&'static str, Chart)> {
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    vec![
        (
            "availability",
            chart(
                "Nodes up",
                subtitle,
                "fraction of member nodes up",
                vec![line("availability", s, |x| x.availability)],
            ),
        ),
        (
            "files_lost",
            chart(
                "Files lost and unreadable",
                subtitle,
                "files",
                vec![
                    line("lost (< k shares on members)", s, |x| {
                        f64::from(x.files_lost)
                    }),
                    line("unreadable now (< k shares up)", s, |x| {
                        f64::from(x.files_unavailable)
                    }),
                ],
            ),
        ),
        (
            "shares_per_file",
            chart(
                "Shares per file",
                subtitle,
                "shares",
                vec![
                    line("stored, copies included (mean)", s, |x| x.copies_mean),
                    line("distinct on members (mean)", s, |x| x.shares_mean),
                    line("distinct on members (least)", s, |x| {
                        f64::from(x.shares_min)
                    }),
                    line("distinct on nodes up (mean)", s, |x| x.shares_up_mean),
                    line("distinct on nodes up (least)", s, |x| {
                        f64::from(x.shares_up_min)
                    }),
                ],
            ),
        ),
        (
            "repair_traffic",
            chart(
                "Repair traffic (cumulative)",
                subtitle,
                "GiB moved by repairs",
                vec![line("repair bytes", s, |x| gib(x.repair_bytes))],
            ),
        ),
    ]
}
