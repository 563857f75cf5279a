// Starts the real midge binary on loopback port 0 and learns its ports from
// the "midge listening URL" lines it prints. Ends only the process it started.
// (Adapted from tests/node/broker.js.)
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const BIN = process.env.MIDGE_BIN || path.resolve(__dirname, '../../target/debug/midge');

/**
 * `opts.args`: extra `midge serve` flags; `opts.config`: TOML text for a
 * config file (written into the data dir); `opts.files`: {name: text} written
 * there too (password files, ACLs), `{dir}` in args and config is replaced by
 * that directory.
 */
async function startBroker(opts = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'midge-browser-'));
  const sub = (s) => s.replaceAll('{dir}', dataDir);
  for (const [name, text] of Object.entries(opts.files || {})) fs.writeFileSync(path.join(dataDir, name), sub(text));
  const args = ['serve', '--mqtt', '127.0.0.1:0', '--http', '127.0.0.1:0', '--data-dir', path.join(dataDir, 'data'), '--sys-interval', '1'];
  if (opts.config) {
    const file = path.join(dataDir, 'midge.toml');
    fs.writeFileSync(file, sub(opts.config));
    args.push('--config', file);
  }
  args.push(...(opts.args || []).map(sub));
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const urls = {};
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`midge did not start in 15 s: ${stderr}`)), 15000);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      for (const m of out.matchAll(/midge listening (\w+):\/\/([\d.]+):(\d+)/g)) urls[m[1]] = { host: m[2], port: Number(m[3]) };
      if (urls.mqtt && urls.ws) { clearTimeout(timer); resolve(); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`midge exited ${code}: ${stderr}`)); });
  });
  return {
    urls,
    dir: dataDir,
    http: `http://${urls.ws.host}:${urls.ws.port}`,
    pid: child.pid,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Writes a password file with `midge passwd` (argon2id hashes). */
function passwordFile(file, users) {
  const { execFileSync } = require('node:child_process');
  const lines = Object.entries(users).map(([u, p]) => `${u}:${p}\n`).join('');
  fs.writeFileSync(file, '');
  execFileSync(BIN, ['passwd', '--stdin', file], { input: lines, timeout: 60000, stdio: 'pipe' });
}

module.exports = { startBroker, passwordFile, BIN };
