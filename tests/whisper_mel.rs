//! `audio::whisper_log_mel` against faster-whisper's `FeatureExtractor` on two signals (written
//! by `scripts/whisper_mel_fixture.py`): every value within 1e-4.
use std::path::Path;
use wgformer::audio::whisper_log_mel;
use wgformer::checkpoint::tensors_from_bytes;

#[test]
fn log_mel_matches_faster_whisper_within_1e_4() {
    let path = Path::new("tests/fixtures/whisper_mel.safetensors");
    let fixture = tensors_from_bytes(path, &std::fs::read(path).unwrap()).unwrap();
    for name in ["chirp", "noise"] {
        let samples = &fixture[&format!("{name}.samples")].1;
        let (shape, want) = &fixture[&format!("{name}.features")];
        let mel = whisper_log_mel(samples, 80);
        assert_eq!(
            [mel.frames, mel.n_mels],
            [shape[0], shape[1]],
            "{name}: shape"
        );
        let (worst, at) = mel
            .data
            .iter()
            .zip(want)
            .enumerate()
            .map(|(i, (g, w))| ((g - w).abs(), i))
            .fold((0f32, 0), |a, b| if b.0 > a.0 { b } else { a });
        eprintln!("{name}: max |ours - faster-whisper| = {worst:.1e}");
        assert!(
            worst <= 1e-4,
            "{name}: |ours - faster-whisper| = {worst:.2e} at frame {}, mel {}",
            at / 80,
            at % 80
        );
    }
}
