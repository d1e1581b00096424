//! Line charts of a run's time series (and of studies over many runs), drawn with plotters
//! as PNG and SVG. Text uses DejaVu Sans, embedded, so no system font is needed.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// One line of a chart.
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart: title, axis names and lines.
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub lines: Vec<Line>,
    /// Draw points as well as lines (for studies with few x values).
    pub markers: bool,
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {reason}")]
pub struct PlotError {
    pub path: String,
    pub reason: String,
}

const SIZE: (u32, u32) = (960, 600);
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
];

fn register_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        // The embedded font is a valid TrueType file: registering cannot fail.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

impl Chart {
    /// Draws the chart to `stem.png` and `stem.svg`.
    pub fn save(&self, stem: &Path) -> Result<(), PlotError> {
        register_font();
        let png = stem.with_extension("png");
        let svg = stem.with_extension("svg");
        let fail = |path: &Path| {
            let path = path.display().to_string();
            move |e: String| PlotError { path, reason: e }
        };
        self.draw(BitMapBackend::new(&png, SIZE).into_drawing_area())
            .map_err(fail(&png))?;
        self.draw(SVGBackend::new(&svg, SIZE).into_drawing_area())
            .map_err(fail(&svg))
    }

    fn draw<B: DrawingBackend>(&self, area: DrawingArea<B, Shift>) -> Result<(), String> {
        let text = |e: DrawingAreaErrorKind<B::ErrorType>| e.to_string();
        area.fill(&WHITE).map_err(text)?;
        let (x, y) = self.ranges();
        let mut chart = ChartBuilder::on(&area)
            .caption(&self.title, ("sans-serif", 26))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(90)
            .build_cartesian_2d(x, y)
            .map_err(text)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(text)?;
        for (i, line) in self.lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let style = ShapeStyle::from(&colour).stroke_width(2);
            let series = LineSeries::new(line.points.iter().copied(), style);
            chart
                .draw_series(series)
                .map_err(text)?
                .label(&line.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            if self.markers {
                let dots = line
                    .points
                    .iter()
                    .map(|&p| Circle::new(p, 4, colour.filled()));
                chart.draw_series(dots).map_err(text)?;
            }
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(text)?;
        area.present().map_err(text)
    }

    /// Axis ranges covering every point, with a little room; never empty.
    fn ranges(&self) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
        let points = || self.lines.iter().flat_map(|l| l.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in points() {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            return (0.0..1.0, 0.0..1.0);
        }
        // Room above the lines for the legend, in the upper right.
        let pad = |lo: f64, hi: f64| {
            let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
            (lo - 0.05 * span, hi + 0.3 * span)
        };
        let (y0, y1) = pad(y0, y1);
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        (x0..x1, y0..y1)
    }
}
