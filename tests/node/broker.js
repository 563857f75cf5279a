// Starts the real midge binary on loopback port 0 and learns its ports from
// the "midge listening URL" lines it prints. Ends only the process it started.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const BIN = process.env.MIDGE_BIN || path.resolve(__dirname, '../../target/debug/midge');

async function startBroker(extraArgs = []) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'midge-node-'));
  const args = ['serve', '--mqtt', '127.0.0.1:0', '--http', '127.0.0.1:0', '--data-dir', dataDir, ...extraArgs];
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const urls = {};
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`midge did not start in 10 s: ${stderr}`)), 10000);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      for (const m of out.matchAll(/midge listening (\w+):\/\/([\d.]+):(\d+)/g)) urls[m[1]] = { host: m[2], port: Number(m[3]) };
      const wanted = extraArgs.includes('--https') ? ['mqtt', 'ws', 'wss'] : ['mqtt', 'ws'];
      if (wanted.every((k) => urls[k])) { clearTimeout(timer); resolve(); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`midge exited ${code}: ${stderr}`)); });
  });
  return {
    urls,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Resolves with the first value `emitter` emits for `event`, or rejects after `ms`. */
function once(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' within ${ms} ms`)), ms);
    emitter.once(event, (...args) => { clearTimeout(timer); resolve(args); });
  });
}

module.exports = { startBroker, once };
