// Takes the README's screenshot (docs/dashboard.png): a real midge, the
// simulated sensor fleet (examples/sensor-fleet.py) and two mosquitto_sub
// listeners for live traffic, and the dashboard in headless Chromium once
// its charts have a minute of data. `npm run screenshot` (MIDGE_BIN picks
// the binary; WARMUP_SECS how long to let traffic run first, default 75).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { startBroker } = require('./broker');
const { launch, openPage } = require('./browser');
const { pngStats } = require('./png');

const OUT = path.resolve(__dirname, '../../docs/dashboard.png');
const WARMUP = Number(process.env.WARMUP_SECS || 75) * 1000;

function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  return Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
}

async function main() {
  const broker = await startBroker();
  const port = String(broker.urls.mqtt.port);
  const children = [];
  let browser;
  try {
    children.push(spawn(process.env.MIDGE_PYTHON || 'python3', [path.resolve(__dirname, '../../examples/sensor-fleet.py'), '--port', port,
      '--sensors', '36', '--interval', '1', '--ramp', String(Math.round(WARMUP / 1500)), '--duration', String(WARMUP / 1000 + 60)], { stdio: 'ignore' }));
    for (const filter of ['fleet/#', 'fleet/+/+/co2']) {
      children.push(spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', port, '-t', filter], { stdio: 'ignore' }));
    }
    browser = await launch();
    const page = await openPage(browser, `${broker.http}/`, { viewport: { width: 1440, height: 1000 } });
    await page.waitForFunction(() => document.body.dataset.monitor === 'connected');
    await new Promise((r) => setTimeout(r, WARMUP));
    await page.waitForFunction(() => document.querySelectorAll('#busiest tbody td.topic').length >= 8);
    fs.mkdirSync(path.dirname(OUT), { recursive: true });
    const png = await page.screenshot({ path: OUT });
    if (page.problems.length) throw new Error(`page problems: ${page.problems.join('; ')}`);
    console.log(`wrote ${OUT}: ${png.length} bytes, ${JSON.stringify(pngStats(png))}`);
  } finally {
    if (browser) await browser.close();
    for (const c of children) await stopChild(c);
    await broker.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
