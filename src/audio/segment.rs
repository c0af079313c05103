//! Where the speech is in a recording, from its energy alone: the level of every 10 ms frame,
//! the pauses between stretches of speech (quiet for at least 150 ms), and the cutting of long
//! audio into windows at those pauses, each short enough for the recognizer.
//!
//! Levels are measured above ~100 Hz (a one-pole high-pass: DC, hum and rumble carry energy
//! and no speech) and averaged over 50 ms, so that steady noise reads as steady. They are
//! relative to the recording itself: `speech_db` is a loud frame (95th percentile) and
//! `floor_db` a quiet one (10th percentile); a frame is quiet when it lies in the lowest
//! quarter of that range. Clean synthetic speech (floor near digital silence) and a noisy
//! recording (floor 20 dB under the speech) are both cut where they pause.

use std::ops::Range;

/// Samples per level frame at 16 kHz (10 ms).
pub const FRAME: usize = 160;

/// Pole of the high-pass filter: a cut-off near 16 kHz * (1 - pole) / 2 pi = 100 Hz.
const HIGH_PASS_POLE: f32 = 0.96;

/// Frames each level is averaged over (centred): 50 ms.
const SMOOTH_FRAMES: usize = 5;

/// The shortest window long audio is cut into (a pause closer than this to the last cut is not
/// cut at).
pub const MIN_WINDOW_SECONDS: f64 = 1.0;

/// A run of quiet frames shorter than this is a gap inside a word or between two words, not a
/// pause worth cutting at (unless nothing better is in reach).
const MIN_PAUSE_FRAMES: usize = 10;

/// Frame levels of a recording and the statistics the cutting rules use.
#[derive(Clone, Debug)]
pub struct Levels {
    /// dB relative to full scale of each 10 ms frame (mean square above ~100 Hz over the 50 ms
    /// around it, floored at -100 dB).
    pub frame_db: Vec<f32>,
    /// A loud frame: the 95th percentile of `frame_db`.
    pub speech_db: f32,
    /// A quiet frame: the 10th percentile.
    pub floor_db: f32,
}

impl Levels {
    /// Levels of 16 kHz `samples` (a last partial frame counts as a frame).
    pub fn of(samples: &[f32]) -> Levels {
        // y[n] = x[n] - x[n-1] + HIGH_PASS_POLE y[n-1]
        let high_passed: Vec<f32> = samples
            .iter()
            .scan((0.0f32, 0.0f32), |(x1, y1), &x| {
                *y1 = x - *x1 + HIGH_PASS_POLE * *y1;
                *x1 = x;
                Some(*y1)
            })
            .collect();
        let power: Vec<f64> = high_passed
            .chunks(FRAME)
            .map(|f| f.iter().map(|&x| x as f64 * x as f64).sum::<f64>() / f.len() as f64)
            .collect();
        let frame_db: Vec<f32> = (0..power.len())
            .map(|t| {
                let span = t.saturating_sub(SMOOTH_FRAMES / 2)
                    ..(t + SMOOTH_FRAMES / 2 + 1).min(power.len());
                let mean = power[span.clone()].iter().sum::<f64>() / span.len() as f64;
                (10.0 * mean.max(1e-10).log10()) as f32
            })
            .collect();
        let mut sorted = frame_db.clone();
        sorted.sort_by(f32::total_cmp);
        let pct = |p: f64| {
            sorted
                .get(((sorted.len().saturating_sub(1)) as f64 * p).round() as usize)
                .copied()
                .unwrap_or(-100.0)
        };
        Levels {
            speech_db: pct(0.95),
            floor_db: pct(0.10),
            frame_db,
        }
    }

    /// The loud frames' level above the quiet ones', in dB.
    pub fn range_db(&self) -> f32 {
        self.speech_db - self.floor_db
    }

    /// Below this a frame is quiet: the lowest quarter of the range between floor and speech.
    pub fn quiet_db(&self) -> f32 {
        self.floor_db + 0.25 * (self.speech_db - self.floor_db)
    }

    /// Quiet runs of at least `MIN_PAUSE_FRAMES` frames, as frame ranges.
    pub fn pauses(&self) -> Vec<Range<usize>> {
        let quiet = self.quiet_db();
        let mut out = Vec::new();
        let mut start = None;
        for (t, &db) in self.frame_db.iter().enumerate() {
            match (db < quiet, start) {
                (true, None) => start = Some(t),
                (false, Some(s)) => {
                    if t - s >= MIN_PAUSE_FRAMES {
                        out.push(s..t);
                    }
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            if self.frame_db.len() - s >= MIN_PAUSE_FRAMES {
                out.push(s..self.frame_db.len());
            }
        }
        out
    }
}

/// Sample ranges covering all of `samples` (16 kHz), each at most `max_seconds` long. Audio
/// no longer than that is one window. Longer audio is cut in the middle of every pause that
/// leaves at least `MIN_WINDOW_SECONDS` on both sides (a recognizer trained on single sentences
/// hears one sentence, or a phrase, at a time); a piece still too long is cut at its longest
/// pause within reach, else at the quietest 100 ms of its second half.
pub fn windows(samples: &[f32], max_seconds: f64) -> Vec<Range<usize>> {
    let per_second = 16_000 / FRAME;
    let max_frames = ((max_seconds * per_second as f64) as usize).max(3);
    let min_frames = (MIN_WINDOW_SECONDS * per_second as f64) as usize;
    let levels = Levels::of(samples);
    let n = levels.frame_db.len();
    let mut cuts: Vec<usize> = Vec::new();
    if n > max_frames {
        let pauses = levels.pauses();
        let mut start = 0;
        for p in &pauses {
            let cut = (p.start + p.end) / 2;
            if cut >= start + min_frames && cut + min_frames <= n {
                cuts.extend(split_long(&levels, &pauses, start, cut, max_frames));
                cuts.push(cut);
                start = cut;
            }
        }
        cuts.extend(split_long(&levels, &pauses, start, n, max_frames));
    }
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().map(|&c| c * FRAME));
    bounds.push(samples.len());
    bounds.windows(2).map(|w| w[0]..w[1]).collect()
}

/// Cuts inside frames `start..end` leaving no piece longer than `max_frames`: from the start of
/// each piece, the longest pause ending within reach (pieces of at least a third of the
/// maximum), else the quietest 100 ms in the piece's second half.
fn split_long(
    levels: &Levels,
    pauses: &[Range<usize>],
    mut start: usize,
    end: usize,
    max_frames: usize,
) -> Vec<usize> {
    let mut cuts = Vec::new();
    while end - start > max_frames {
        let reach = start + max_frames / 3..start + max_frames;
        let longest_pause = pauses
            .iter()
            .map(|p| (p.start.max(reach.start), p.end.min(reach.end)))
            .filter(|(s, e)| s < e)
            .max_by_key(|&(s, e)| (e - s, s));
        let cut = match longest_pause {
            Some((s, e)) => (s + e) / 2,
            None => quietest(&levels.frame_db, start + max_frames / 2..start + max_frames),
        };
        cuts.push(cut);
        start = cut;
    }
    cuts
}

/// The centre of the quietest 10-frame stretch in `range`.
fn quietest(frame_db: &[f32], range: Range<usize>) -> usize {
    const SPAN: usize = 10;
    range
        .clone()
        .filter(|&t| t + SPAN <= frame_db.len())
        .min_by(|&a, &b| {
            let sum = |t: usize| frame_db[t..t + SPAN].iter().sum::<f32>();
            sum(a).total_cmp(&sum(b))
        })
        .map_or((range.start + range.end) / 2, |t| t + SPAN / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `seconds` of a 200 Hz tone at amplitude 0.3 (speech-like level) or of silence.
    fn tone(seconds: f64) -> Vec<f32> {
        (0..(seconds * 16_000.0) as usize)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 200.0 * i as f32 / 16_000.0).sin())
            .collect()
    }

    fn silence(seconds: f64) -> Vec<f32> {
        vec![0.0; (seconds * 16_000.0) as usize]
    }

    #[test]
    fn short_audio_is_one_window() {
        let audio = [tone(2.0), silence(0.5), tone(2.0)].concat();
        assert_eq!(windows(&audio, 5.0), vec![0..audio.len()]);
    }

    /// The window starts after the first, in seconds.
    fn cuts(w: &[Range<usize>]) -> Vec<f64> {
        w[1..].iter().map(|r| r.start as f64 / 16_000.0).collect()
    }

    #[test]
    fn long_audio_is_cut_in_the_middle_of_every_pause_a_second_from_the_last_cut() {
        // 0.4 s pauses centred at 0.7 s (too close to the start), 3.1 s and 5.5 s.
        let audio = [
            tone(0.5),
            silence(0.4),
            tone(2.0),
            silence(0.4),
            tone(2.0),
            silence(0.4),
            tone(2.0),
        ]
        .concat();
        let w = windows(&audio, 5.0);
        let cuts = cuts(&w);
        assert_eq!(cuts.len(), 2, "{cuts:?}");
        for (cut, centre) in cuts.iter().zip([3.1, 5.5]) {
            assert!(
                (cut - centre).abs() <= 0.02,
                "cut at {cut} s, pause centred at {centre} s"
            );
        }
        assert_eq!(w.last().unwrap().end, audio.len());
    }

    #[test]
    fn audio_without_pauses_is_cut_where_it_is_quietest() {
        // 12 s of tone whose level dips at 4 s (a short gap, too short to be a pause).
        let mut audio = tone(12.0);
        for x in &mut audio[4 * 16_000..4 * 16_000 + 1_600] {
            *x *= 0.01;
        }
        let w = windows(&audio, 6.0);
        assert!(w.iter().all(|r| r.len() <= 6 * 16_000), "{w:?}");
        let first_cut = cuts(&w)[0];
        assert!((first_cut - 4.05).abs() < 0.06, "cut at {first_cut} s");
    }
}
