// The demo page: trains the small character LM through wgformer's wasm build, drawing the
// loss curve, sampling every 50 steps and offering the checkpoint for download.
// `?smoke=N` trains N steps unattended and writes PASS or FAIL into #result (scripts/test_web).
import init, { ClmTrainer } from './pkg/wgformer.js';

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

  const smoke = Number(new URLSearchParams(location.search).get('smoke') || 0);
  if (smoke > 0) {
    const rate = await train(trainer, (steps) => steps >= smoke);
    const head = losses.slice(0, 3), tail = losses.slice(-3);
    const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
    const fell = mean(tail) < mean(head) - 0.3;
    const sample = await trainer.sample('ROMEO:\n', 40, 1n);
    const bytes = await trainer.checkpoint();
    const report = `${fell ? 'PASS' : 'FAIL'} loss ${mean(head).toFixed(3)} -> ${mean(tail).toFixed(3)}` +
      ` over ${smoke} steps, ${rate.toFixed(0)} tokens/s, checkpoint ${bytes.length} bytes,` +
      ` adapter ${trainer.adapter()}, sample ${JSON.stringify(sample)}`;
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
