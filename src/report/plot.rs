//! Training-curve plots as PNG files, drawn by hand into an RGB8 buffer so that a fresh machine
//! needs no fonts and no plotting stack: axes, light grid, nice round tick labels, a legend, and
//! optional log-scale y. Text uses an embedded 5x7 bitmap font drawn at 2x.

use crate::error::Error;
use std::path::Path;

/// One named curve: (x, y) points, usually (step, loss), drawn in the order given.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

type Rgb = [u8; 3];

const WHITE: Rgb = [255, 255, 255];
const INK: Rgb = [30, 30, 30];
const GRID: Rgb = [228, 228, 228];
/// Distinct hues (matplotlib's tab10 order); series past the eighth reuse them.
const PALETTE: [Rgb; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
];

/// Larger images are refused: a training curve never needs them and the buffer would be huge.
const MAX_SIDE: u32 = 8192;
/// Text scale: each font pixel becomes SxS pixels.
const S: i64 = 2;
const CHAR_W: i64 = 6 * S;
const CHAR_H: i64 = 7 * S;

/// 5x7 glyphs, 35 bits each: row-major from the top-left pixel, most significant bit first.
/// Lower-case letters are drawn with the upper-case glyphs; unknown characters as '?'.
const FONT_CHARS: &[u8; 47] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.,-+/():_%=";
#[rustfmt::skip]
const FONT: [u64; 47] = [
    0x3a33ae62e, 0x11842108e, 0x3a211111f, 0x7c441062e, 0x08ca97c42, 0x7e1e0862e, 0x1910f462e,
    0x7c2222108, 0x3a317462e, 0x3a317844c, 0x3a31fc631, 0x7a31f463e, 0x3a308422e, 0x72518c65c,
    0x7e10f421f, 0x7e10f4210, 0x3a30bc62f, 0x4631fc631, 0x38842108e, 0x1c4210a4c, 0x4654c5251,
    0x42108421f, 0x4775ac631, 0x4639ace31, 0x3a318c62e, 0x7a31f4210, 0x3a318d64d, 0x7a31f5251,
    0x3e107043e, 0x7c8421084, 0x46318c62e, 0x46318c544, 0x4631ad6aa, 0x462a22a31, 0x462a21084,
    0x7c222221f, 0x00000018c, 0x000003088, 0x0000f8000, 0x0084f9080, 0x002222200, 0x088842082,
    0x208210888, 0x018c03180, 0x00000001f, 0x632222263, 0x001f07c00,
];
const GLYPH_UNKNOWN: u64 = 0x3a2111004; // '?'

fn glyph(c: char) -> u64 {
    if c == ' ' {
        return 0;
    }
    let c = c.to_ascii_uppercase();
    let i = FONT_CHARS.iter().position(|&ch| ch as char == c);
    i.map_or(GLYPH_UNKNOWN, |i| FONT[i])
}

fn text_width(s: &str) -> i64 {
    (s.chars().count() as i64 * CHAR_W - S).max(0)
}

struct Canvas {
    w: i64,
    h: i64,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: u32, h: u32) -> Self {
        let px = vec![255; w as usize * h as usize * 3];
        let (w, h) = (w.into(), h.into());
        Canvas { w, h, px }
    }

    fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if (0..self.w).contains(&x) && (0..self.h).contains(&y) {
            let i = ((y * self.w + x) * 3) as usize;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Fills the inclusive rectangle [x0, x1] x [y0, y1].
    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        for y in y0.max(0)..=y1.min(self.h - 1) {
            for x in x0.max(0)..=x1.min(self.w - 1) {
                self.set(x, y, c);
            }
        }
    }

    fn text(&mut self, x: i64, y: i64, s: &str, c: Rgb) {
        for (i, ch) in s.chars().enumerate() {
            let bits = glyph(ch);
            let gx = x + i as i64 * CHAR_W;
            for bit in 0..35 {
                if bits >> (34 - bit) & 1 == 1 {
                    let (px, py) = (gx + (bit % 5) * S, y + (bit / 5) * S);
                    self.rect(px, py, px + S - 1, py + S - 1, c);
                }
            }
        }
    }

    /// Bresenham line with a 2x2 brush, drawn only inside the inclusive `clip` rectangle.
    fn line(&mut self, (mut x, mut y): (i64, i64), (x1, y1): (i64, i64), c: Rgb, clip: [i64; 4]) {
        let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
        let (sx, sy) = (if x < x1 { 1 } else { -1 }, if y < y1 { 1 } else { -1 });
        let mut err = dx + dy;
        loop {
            let (bx, by) = ((x + 1).min(clip[2]), (y + 1).min(clip[3]));
            self.rect(x.max(clip[0]), y.max(clip[1]), bx, by, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }
}

/// An axis in plotting space (log10 of the value on a log axis): its range and labelled ticks.
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<(f64, String)>,
}

/// 1, 2 or 5 times a power of ten, so that `span` holds about `target` steps.
fn nice_step(span: f64, target: usize) -> f64 {
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|&m| m >= norm * 0.999)
        .unwrap_or(10.0)
        * mag
}

/// Formats a tick value with just the digits its step resolves, in scientific notation when the
/// axis (`sci`) holds values outside 1e-3..1e6.
fn fmt_tick(v: f64, step: f64, sci: bool) -> String {
    if v.abs() < step * 1e-6 {
        return "0".into();
    }
    if !sci {
        let decimals = (-(step.log10() + 1e-9).floor()).clamp(0.0, 9.0) as usize;
        return format!("{v:.decimals$}");
    }
    let prec =
        ((v.abs().log10() + 1e-9).floor() - (step.log10() + 1e-9).floor()).clamp(0.0, 6.0) as usize;
    let s = format!("{v:.prec$e}");
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => {
            format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => s,
    }
}

/// Scientific labels for an axis whose largest magnitude is below 1e-3 or at least 1e6.
fn needs_sci(lo: f64, hi: f64) -> bool {
    !(1e-3..1e6).contains(&lo.abs().max(hi.abs()))
}

/// Linear ticks at nice round values, the range widened to whole steps.
fn linear_axis(lo: f64, hi: f64, target: usize) -> Axis {
    let step = nice_step(hi - lo, target);
    let (lo, hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    let n = (((hi - lo) / step).round() as usize).min(100);
    let sci = needs_sci(lo, hi);
    let ticks = (0..=n).map(|i| lo + i as f64 * step);
    let ticks = ticks.map(|v| (v, fmt_tick(v, step, sci))).collect();
    Axis { lo, hi, ticks }
}

/// Log axis over positive `lo..hi`: ticks at powers of ten when the data spans two decades or
/// more, else at 1-2-5 values when at least three fit, else nice linear values placed
/// logarithmically.
fn log_axis(lo: f64, hi: f64, target: usize) -> Axis {
    let (llo, lhi) = (lo.log10(), hi.log10());
    let (a, b) = (llo.floor() as i32, lhi.ceil() as i32);
    let sci = needs_sci(10f64.powi(a), 10f64.powi(b)) || a < -3;
    if lhi - llo >= 2.0 {
        let every = ((b - a) as usize).div_ceil(target.max(1)).max(1);
        let ticks = (a..=b).step_by(every).map(|k| {
            let v = 10f64.powi(k);
            (k as f64, fmt_tick(v, v, sci))
        });
        let (lo, hi, ticks) = (a as f64, b as f64, ticks.collect());
        return Axis { lo, hi, ticks };
    }
    let nice: Vec<f64> = (a..=b)
        .flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k)))
        .collect();
    let start = nice.iter().rposition(|&v| v <= lo * 1.000001).unwrap_or(0);
    let end = nice
        .iter()
        .position(|&v| v >= hi / 1.000001)
        .unwrap_or(nice.len() - 1);
    if end.saturating_sub(start) >= 2 {
        let ticks = nice[start..=end].iter();
        let ticks = ticks.map(|&v| (v.log10(), fmt_tick(v, v, sci))).collect();
        let (lo, hi) = (nice[start].log10(), nice[end].log10());
        return Axis { lo, hi, ticks };
    }
    let lin = linear_axis(lo, hi, target);
    let (lo, hi) = (if lin.lo > 0.0 { lin.lo } else { lo }, lin.hi);
    let ticks = lin.ticks.into_iter().filter(|&(v, _)| v >= lo && v > 0.0);
    let ticks = ticks.map(|(v, s)| (v.log10(), s)).collect();
    let (lo, hi) = (lo.log10(), hi.log10());
    Axis { lo, hi, ticks }
}

impl Axis {
    fn widest_label(&self) -> i64 {
        self.ticks
            .iter()
            .map(|t| text_width(&t.1))
            .max()
            .unwrap_or(0)
    }
}

/// The data range, widened when empty or flat so that mapping never divides by zero.
fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    match (lo <= hi, log) {
        (false, false) => (0.0, 1.0),
        (false, true) => (1.0, 10.0),
        (true, true) if lo == hi => (lo / 2.0, hi * 2.0),
        (true, false) if lo == hi => (lo - lo.abs().max(1.0) * 0.5, hi + hi.abs().max(1.0) * 0.5),
        _ => (lo, hi),
    }
}

/// Plot one or more series (x = step, y = loss) into a PNG of width x height pixels, with a title,
/// axis tick labels (a few nice round numbers on each axis), a legend with each series' colour, and
/// optional log-scale y (points with y <= 0 are then skipped). Non-finite points are skipped.
/// Errors (IO, or a size too small for the axes and labels) name the path.
pub fn plot_curves(
    path: &Path,
    title: &str,
    series: &[Series],
    log_y: bool,
    width: u32,
    height: u32,
) -> crate::Result<()> {
    let usable = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter().copied().filter(usable))
    };
    if width > MAX_SIDE || height > MAX_SIDE {
        let msg = format!("a {width}x{height} plot exceeds {MAX_SIDE} pixels a side");
        return Err(Error::format(path, msg));
    }
    let (top, bottom) = (CHAR_H + 20, CHAR_H + 16);
    let plot_h = height as i64 - top - bottom;
    let (ylo, yhi) = range(pts().map(|p| p.1), log_y);
    let y_target = (plot_h / 60).clamp(2, 8) as usize;
    let yaxis = match log_y {
        true => log_axis(ylo, yhi, y_target),
        false => linear_axis(ylo, yhi, y_target),
    };
    let left = yaxis.widest_label() + 18;
    let mut plot_w = width as i64 - left - 20;
    if plot_w < 40 || plot_h < 40 {
        let msg = format!("a {width}x{height} plot leaves no room for axes and labels");
        return Err(Error::format(path, msg));
    }
    let (xlo, xhi) = range(pts().map(|p| p.0), false);
    // Fewer x ticks until their labels no longer collide.
    let most = (plot_w / 90).clamp(2, 10) as usize;
    let mut xaxis = linear_axis(xlo, xhi, most);
    for target in (2..most).rev() {
        if (xaxis.widest_label() + CHAR_W) * xaxis.ticks.len() as i64 <= plot_w {
            break;
        }
        xaxis = linear_axis(xlo, xhi, target);
    }
    // Room on the right for half of the last x label, which is centred on the frame's edge.
    let last_label = xaxis.ticks.last().map_or(0, |t| text_width(&t.1));
    plot_w -= (last_label / 2 + 4 - 20).max(0);

    let (x0, y0, x1, y1) = (left, top, left + plot_w, top + plot_h);
    let px = |x: f64| x0 + ((x - xaxis.lo) / (xaxis.hi - xaxis.lo) * plot_w as f64).round() as i64;
    let ty = |y: f64| if log_y { y.log10() } else { y };
    let py = |t: f64| y1 - ((t - yaxis.lo) / (yaxis.hi - yaxis.lo) * plot_h as f64).round() as i64;

    let mut c = Canvas::new(width, height);
    for (v, label) in &xaxis.ticks {
        let x = px(*v);
        c.rect(x, y0, x, y1, GRID);
        c.rect(x, y1, x, y1 + 4, INK);
        c.text(x - text_width(label) / 2, y1 + 8, label, INK);
    }
    for (v, label) in &yaxis.ticks {
        let y = py(*v);
        c.rect(x0, y, x1, y, GRID);
        c.rect(x0 - 4, y, x0, y, INK);
        c.text(x0 - 8 - text_width(label), y - CHAR_H / 2, label, INK);
    }
    c.rect(x0, y0, x1, y0, INK);
    c.rect(x0, y1, x1, y1, INK);
    c.rect(x0, y0, x0, y1, INK);
    c.rect(x1, y0, x1, y1, INK);

    let clip = [x0 + 1, y0 + 1, x1 - 1, y1 - 1];
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let p = s.points.iter().filter(|p| usable(p));
        let p: Vec<(i64, i64)> = p.map(|&(x, y)| (px(x), py(ty(y)))).collect();
        match p.as_slice() {
            [only] => c.rect(only.0 - 2, only.1 - 2, only.0 + 2, only.1 + 2, color),
            _ => p.windows(2).for_each(|w| c.line(w[0], w[1], color, clip)),
        }
    }

    // Legend in the top-right corner, where falling loss curves rarely are.
    if !series.is_empty() {
        let max_chars = ((plot_w - 60) / CHAR_W).max(1) as usize;
        let names = series
            .iter()
            .map(|s| s.name.chars().take(max_chars).collect());
        let names: Vec<String> = names.collect();
        let row = CHAR_H + 6;
        let w = 42 + names.iter().map(|n| text_width(n)).max().unwrap_or(0);
        let (lx, ly) = (x1 - 8 - w, y0 + 8);
        let lb = ly + row * names.len() as i64 + 6;
        c.rect(lx, ly, lx + w, lb, INK);
        c.rect(lx + 1, ly + 1, lx + w - 1, lb - 1, WHITE);
        for (i, name) in names.iter().enumerate() {
            let (ry, color) = (ly + 6 + row * i as i64, PALETTE[i % PALETTE.len()]);
            c.rect(lx + 8, ry + CHAR_H / 2 - 1, lx + 30, ry + CHAR_H / 2, color);
            c.text(lx + 36, ry, name, INK);
        }
    }
    let tx = ((width as i64 - text_width(title)) / 2).max(4);
    c.text(tx, 8, title, INK);
    write_png(path, &c)
}

fn write_png(path: &Path, c: &Canvas) -> crate::Result<()> {
    let io = |e: png::EncodingError| Error::io(path, e.into());
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), c.w as u32, c.h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(io)?;
    writer.write_image_data(&c.px).map_err(io)?;
    writer.finish().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
        let bytes = std::fs::read(path).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        (info.width, info.height, buf)
    }

    fn count(px: &[u8], c: Rgb) -> usize {
        px.chunks(3).filter(|p| *p == c).count()
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("wgformer_plot_{}_{name}.png", std::process::id()))
    }

    fn curve(name: &str, f: impl Fn(f64) -> f64) -> Series {
        let points = (0..200)
            .map(|i| (i as f64 * 5.0, f(i as f64 * 5.0)))
            .collect();
        Series {
            name: name.into(),
            points,
        }
    }

    #[test]
    fn plot_decodes_at_requested_size_with_each_series_colour() {
        let path = tmp("two");
        let s = [
            curve("train", |x| 8.0 / (1.0 + x / 50.0)),
            curve("val", |x| 9.0 / (1.0 + x / 60.0)),
        ];
        plot_curves(&path, "loss", &s, false, 640, 400).unwrap();
        let (w, h, px) = decode(&path);
        assert_eq!((w, h), (640, 400));
        assert!(count(&px, PALETTE[0]) > 500, "train curve missing");
        assert!(count(&px, PALETTE[1]) > 500, "val curve missing");
        assert_eq!(count(&px, PALETTE[2]), 0, "only two series were given");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn empty_and_nan_only_series_still_write_a_plot() {
        let path = tmp("empty");
        let nan = Series {
            name: "nan".into(),
            points: vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)],
        };
        let s = [
            Series {
                name: "empty".into(),
                points: vec![],
            },
            nan,
        ];
        plot_curves(&path, "nothing", &s, false, 300, 200).unwrap();
        plot_curves(&path, "nothing", &s, true, 300, 200).unwrap();
        plot_curves(&path, "no series", &[], false, 300, 200).unwrap();
        assert_eq!(decode(&path).0, 300);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn log_scale_skips_non_positive_values_and_draws_the_rest() {
        let path = tmp("log");
        let mut s = curve("loss", |x| 10.0 * (-x / 200.0).exp());
        s.points.extend([(1000.0, 0.0), (1005.0, -3.0)]);
        plot_curves(&path, "log loss", &[s], true, 500, 300).unwrap();
        assert!(count(&decode(&path).2, PALETTE[0]) > 300);
        let flat = Series {
            name: "flat".into(),
            points: vec![(0.0, 2.0), (10.0, 2.0)],
        };
        plot_curves(&path, "flat", &[flat], true, 500, 300).unwrap();
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn unwritable_path_and_tiny_size_are_errors_naming_the_path() {
        let s = [curve("a", |x| x)];
        let bad = Path::new("/nonexistent_dir_for_plot_test/out.png");
        let err = plot_curves(bad, "t", &s, false, 300, 200)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent_dir_for_plot_test/out.png"),
            "{err}"
        );
        let err = plot_curves(&tmp("tiny"), "t", &s, false, 20, 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("tiny") && err.contains("20x20"), "{err}");
    }

    #[test]
    fn ticks_are_round_numbers_covering_the_data() {
        let labels = |a: &Axis| a.ticks.iter().map(|t| t.1.clone()).collect::<Vec<_>>();
        let a = linear_axis(3.0, 997.0, 5);
        assert_eq!(labels(&a), ["0", "200", "400", "600", "800", "1000"]);
        assert_eq!(
            labels(&linear_axis(2.13, 2.87, 4)),
            ["2.0", "2.2", "2.4", "2.6", "2.8", "3.0"]
        );
        assert_eq!(
            labels(&log_axis(0.02, 30.0, 6)),
            ["0.01", "0.1", "1", "10", "100"]
        );
        assert_eq!(
            labels(&log_axis(1.45, 10.5, 6)),
            ["1", "2", "5", "10", "20"]
        );
        assert_eq!(
            labels(&linear_axis(0.0, 2.1e7, 5)),
            ["0", "5e6", "1e7", "1.5e7", "2e7", "2.5e7"]
        );
        assert_eq!(
            labels(&linear_axis(9e-4, 1.1e-3, 4)),
            ["0.00090", "0.00095", "0.00100", "0.00105", "0.00110"]
        );
    }
}
