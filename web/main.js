// The demo page: trains the small character LM through wgformer's wasm build, drawing the
// loss curve, sampling every 50 steps and offering the checkpoint for download.
// `?smoke=N` trains N steps unattended and writes PASS or FAIL into #result (scripts/test_web).
import init, { ClmTrainer, Transcriber } from './pkg/wgformer.js';

const $ = (id) => document.getElementById(id);
const status = (text) => { $('status').textContent = text; };
const losses = [];

function drawCurve() {
  const c = $('curve'), g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  if (losses.length < 2) return;
  const max = Math.max(...losses), min = Math.min(...losses, 0);
  g.beginPath();
  losses.forEach((l, i) => {
    const x = (i / (losses.length - 1)) * (c.width - 10) + 5;
    const y = c.height - 5 - ((l - min) / (max - min || 1)) * (c.height - 10);
    i ? g.lineTo(x, y) : g.moveTo(x, y);
  });
  g.stroke();
  g.fillText(`loss ${losses[losses.length - 1].toFixed(3)} at step ${losses.length}`, 10, 14);
}

function download(name, data, type) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([data], { type }));
  a.download = name;
  a.click();
}

const bytes = async (url) => {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${r.statusText}`);
  return new Uint8Array(await r.arrayBuffer());
};

// The recognizers, loaded on first use: 'asr' (models/asr) or 'whisper' (models/whisper-tiny.en).
const transcribers = {};
async function transcriber(name) {
  if (!transcribers[name]) {
    const before = $('status').textContent;
    status(`Loading ${name}…`);
    transcribers[name] = name === 'whisper'
      ? await Transcriber.whisper(await bytes('whisper/model.bin'),
          new TextDecoder().decode(await bytes('whisper/tokenizer.json')))
      : await Transcriber.course(...await Promise.all(['config.yaml', 'tokenizer.json',
          'features.json', 'model.safetensors'].map((f) => bytes(`asr/${f}`))));
    status(before);
  }
  return transcribers[name];
}

// The transcript of WAV bytes (or of recorded samples) and the real-time factor.
async function transcribe(name, input) {
  const t = await transcriber(name);
  const started = performance.now();
  const text = input.wav ? await t.transcribe_wav(input.wav)
    : await t.transcribe_samples(input.samples, input.rate);
  const seconds = (performance.now() - started) / 1000;
  return { text, rtf: seconds / input.seconds };
}

function wavSeconds(wav) {
  // The RIFF header's byte rate (offset 28) and the size of the data after a 44-byte header.
  const view = new DataView(wav.buffer);
  return (wav.length - 44) / view.getUint32(28, true);
}

async function showTranscript(input) {
  const name = $('model').value;
  $('transcript').textContent = 'transcribing…';
  try {
    const { text, rtf } = await transcribe(name, input);
    $('transcript').textContent = `${text}\n(${name}, real-time factor ${rtf.toFixed(2)})`;
  } catch (e) {
    $('transcript').textContent = `Error: ${e.message || e}`;
  }
}

async function record(button) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const context = new AudioContext();
  const source = context.createMediaStreamSource(stream);
  const tap = context.createScriptProcessor(4096, 1, 1);
  const chunks = [];
  tap.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
  source.connect(tap);
  tap.connect(context.destination);
  button.textContent = 'Stop';
  await new Promise((done) => { button.onclick = done; });
  stream.getTracks().forEach((t) => t.stop());
  await context.close();
  button.textContent = 'Record';
  const samples = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((at, c) => { samples.set(c, at); return at + c.length; }, 0);
  return { samples, rate: context.sampleRate, seconds: samples.length / context.sampleRate };
}

function setUpSpeech(hasWhisper) {
  if (hasWhisper) $('model').add(new Option('Whisper tiny.en', 'whisper'));
  const fromFile = async (f) => {
    const wav = new Uint8Array(await f.arrayBuffer());
    await showTranscript({ wav, seconds: wavSeconds(wav) });
  };
  $('wav').onchange = () => $('wav').files[0] && fromFile($('wav').files[0]);
  $('drop').ondragover = (e) => e.preventDefault();
  $('drop').ondrop = (e) => { e.preventDefault(); fromFile(e.dataTransfer.files[0]); };
  $('record').onclick = async () => {
    const onclick = $('record').onclick;
    await showTranscript(await record($('record')));
    $('record').onclick = onclick;
  };
}

// Levenshtein distance over characters / the reference's length.
function cer(ref, hyp) {
  let prev = Array.from({ length: hyp.length + 1 }, (_, j) => j);
  for (let i = 1; i <= ref.length; i++) {
    const row = [i];
    for (let j = 1; j <= hyp.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ref[i - 1] === hyp[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[hyp.length] / ref.length;
}

// Train until `stop()` says so; returns the tokens per second of the steps run.
async function train(trainer, stop) {
  const started = performance.now();
  let steps = 0;
  while (!stop(steps)) {
    losses.push(await trainer.step());
    steps += 1;
    drawCurve();
    const seconds = (performance.now() - started) / 1000;
    $('rate').textContent = `${(steps * trainer.tokens_per_step() / seconds).toFixed(0)} tokens/s`;
    if (losses.length % 50 === 0) {
      $('sample').textContent = await trainer.sample('ROMEO:\n', 200, BigInt(losses.length));
    }
  }
  return (steps * trainer.tokens_per_step()) / ((performance.now() - started) / 1000);
}

async function main() {
  await init();
  if (!navigator.gpu) {
    throw new Error('this browser offers no WebGPU (Chromium: --enable-unsafe-webgpu)');
  }
  status('Opening WebGPU and building the model…');
  const [text, yaml] = await Promise.all([
    fetch('shakespeare.txt').then((r) => r.text()),
    fetch('clm-small.yaml').then((r) => r.text()),
  ]);
  const trainer = await ClmTrainer.create(text, yaml);
  status(`Adapter: ${trainer.adapter()}`);
  const hasWhisper = (await fetch('whisper/model.bin', { method: 'HEAD' })).ok;
  setUpSpeech(hasWhisper);

  const smoke = Number(new URLSearchParams(location.search).get('smoke') || 0);
  if (smoke > 0) {
    const rate = await train(trainer, (steps) => steps >= smoke);
    const head = losses.slice(0, 3), tail = losses.slice(-3);
    const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
    const fell = mean(tail) < mean(head) - 0.3;
    const sample = await trainer.sample('ROMEO:\n', 40, 1n);
    const saved = await trainer.checkpoint();
    // The clip of tests/fixtures/audio, a held-out sentence: what the native test transcribes.
    const reference = 'WITHIN MY TENT HIS BONES TO NIGHT SHALL LIE';
    const wav = await bytes('held_out_sentence.wav');
    const heard = [];
    let ok = fell;
    // The clip as the recording path hands it over too: samples the browser decoded at 48 kHz.
    const decoded = await new OfflineAudioContext(1, 1, 48000).decodeAudioData(wav.slice().buffer);
    const samples = { samples: decoded.getChannelData(0), rate: 48000, seconds: decoded.duration };
    const runs = [['asr', { wav, seconds: wavSeconds(wav) }], ['asr (samples)', samples]];
    if (hasWhisper) runs.push(['whisper', { wav, seconds: wavSeconds(wav) }]);
    for (const [label, input] of runs) {
      const name = label.split(' ')[0];
      const { text: said, rtf } = await transcribe(name, input);
      const plain = said.toUpperCase().replace(/[^A-Z' ]/g, '').replace(/\s+/g, ' ').trim();
      const rate = cer(reference, plain);
      ok = ok && rate < 0.4;
      heard.push(`${label} ${JSON.stringify(said)} (CER ${rate.toFixed(3)}, real-time factor ${rtf.toFixed(2)})`);
    }
    const report = `${ok ? 'PASS' : 'FAIL'} loss ${mean(head).toFixed(3)} -> ${mean(tail).toFixed(3)}` +
      ` over ${smoke} steps, ${rate.toFixed(0)} tokens/s, checkpoint ${saved.length} bytes,` +
      ` adapter ${trainer.adapter()}, sample ${JSON.stringify(sample)}; ${heard.join('; ')}`;
    $('result').hidden = false;
    $('result').textContent = report;
    return;
  }

  let running = false;
  $('train').disabled = false;
  $('train').onclick = async () => {
    running = !running;
    $('train').textContent = running ? 'Pause' : 'Train';
    $('download').disabled = running;
    if (running) {
      await train(trainer, () => !running || losses.length >= trainer.total_steps());
      running = false;
      $('train').textContent = 'Train';
      $('download').disabled = false;
    }
  };
  $('download').onclick = async () => {
    download('model.safetensors', await trainer.checkpoint(), 'application/octet-stream');
    download('tokenizer.json', await trainer.tokenizer_json(), 'application/json');
    download('config.yaml', await trainer.config_yaml(), 'text/yaml');
  };
}

main().catch((e) => {
  status(`Error: ${e.message || e}`);
  $('result').hidden = false;
  $('result').textContent = `FAIL ${e.message || e}`;
});
