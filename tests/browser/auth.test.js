// The dashboard with authentication on (a password file, anonymous refused,
// `http.admins = ["admin"]`): the sign-in dialog, refused and accepted
// credentials, the management API for admins (stats, client table,
// disconnect button) and the $SYS fallback for everyone else.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { startBroker, passwordFile } = require('./broker');
const { launch, openPage, screenshot } = require('./browser');
const { assertNotBlank } = require('./png');

let broker;
let browser;

before(async () => {
  const fs = require('node:fs');
  const os = require('node:os');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'midge-browser-pw-'));
  const pw = path.join(dir, 'passwd');
  passwordFile(pw, { admin: 'admin-secret', alice: 'alice-secret' });
  broker = await startBroker({
    files: { passwd: fs.readFileSync(pw, 'utf8') },
    config: '[http]\nadmins = ["admin"]\n',
    args: ['--password-file', '{dir}/passwd'],
  });
  fs.rmSync(dir, { recursive: true, force: true });
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (broker) await broker.stop();
});

/** Problems other than the ones a test provokes on purpose. */
function unexpected(page, allowed = []) {
  return page.problems.filter((p) => !allowed.some((re) => re.test(p)));
}

async function signIn(page, username, password) {
  await page.waitForSelector('#login-dialog[open]');
  await page.fill('#login-username', username);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
}

/** A mosquitto_sub that stays connected until `stop()`. */
function mosquittoSub(id, user, password) {
  const child = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(broker.urls.mqtt.port), '-i', id, '-u', user, '-P', password, '-t', 'watch/#'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  return {
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
    },
  };
}

test('a visitor is asked to sign in; a wrong password is refused, the right one connects', { timeout: 60000 }, async () => {
  const page = await openPage(browser, `${broker.http}/`);
  try {
    await page.waitForFunction(() => document.body.dataset.monitor === 'auth');
    assert.equal(await page.isVisible('#login-dialog'), true);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'login-username');
    assert.match(await page.textContent('#login-reason'), /username and password/);
    await signIn(page, 'alice', 'wrong');
    await page.waitForFunction(() => /refused/.test(document.querySelector('#login-error').textContent));
    assert.equal(await page.isVisible('#login-dialog'), true);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'refused credentials are not kept');
    await page.fill('#login-password', 'alice-secret');
    await page.click('#login-submit');
    await page.waitForFunction(() => document.body.dataset.monitor === 'connected');
    assert.equal(await page.isVisible('#login-dialog'), false);
    assert.equal(await page.textContent('#user-label'), 'signed in as alice');
    assert.equal(await page.textContent('#login-button'), 'Sign out');
    // alice is no admin: statistics come from $SYS.
    await page.waitForFunction(() => Number(document.querySelector('#view-overview').dataset.samples || 0) >= 2, null, { timeout: 15000 });
    assert.match(await page.textContent('#stats-source'), /\$SYS/);
    // The built-in client is pre-filled with the same credentials and connects.
    await page.click('#tab-client');
    assert.equal(await page.inputValue('#client-connect [name=username]'), 'alice');
    await page.click('#client-connect-button');
    await page.waitForFunction(() => document.querySelector('#view-client').dataset.connected === 'true');
    // A reload keeps the session (sessionStorage), signing out forgets it.
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.monitor === 'connected');
    await page.click('#login-button');
    await page.waitForFunction(() => document.body.dataset.monitor === 'auth');
    await page.waitForSelector('#login-dialog[open]');
    // The refused login's 403 on /api/v1/stats is alice's, on purpose.
    assert.deepEqual(unexpected(page, [/HTTP 403: .*\/api\/v1\/stats/, /status of 403/]), []);
  } finally {
    await page.context().close();
  }
});

test('an admin gets statistics and the client table from the management API', { timeout: 60000 }, async () => {
  const watcher = mosquittoSub('watcher-1', 'alice', 'alice-secret');
  const page = await openPage(browser, `${broker.http}/#clients`);
  try {
    await signIn(page, 'admin', 'admin-secret');
    await page.waitForFunction(() => document.body.dataset.monitor === 'connected');
    await page.waitForFunction(() => /GET \/api\/v1\/stats/.test(document.querySelector('#stats-source').textContent), null, { timeout: 15000 });
    await page.waitForFunction(() => document.querySelector('#view-clients').dataset.mode === 'api');
    await page.waitForSelector('#clients-table tr[data-client="watcher-1"]', { timeout: 15000 });
    const row = page.locator('#clients-table tr[data-client="watcher-1"]');
    assert.equal(await row.locator('td').nth(0).textContent(), 'alice');
    assert.match(await row.locator('td').nth(2).textContent(), /^3\.1\.1|^5\.0/);
    assert.equal(await row.locator('td').nth(4).textContent(), '1', 'one subscription');
    // The dashboard's own connection is marked.
    assert.match(await page.textContent('#clients-table tbody'), /\(this page\)/);
    assertNotBlank(await screenshot(page, 'clients-admin'));
    // Disconnect: the first press arms the button, the second sends DELETE.
    const kick = row.locator('button[data-kick="watcher-1"]');
    await kick.click();
    await page.waitForFunction(() => document.querySelector('button[data-kick="watcher-1"]').textContent === 'Confirm');
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().endsWith('/api/v1/clients/watcher-1')),
      page.locator('button[data-kick="watcher-1"]').click(),
    ]);
    assert.match(response.request().headers().authorization || '', /^Basic /);
    await page.waitForFunction(() => /watcher-1/.test(document.querySelector('#clients-action').textContent));
    const said = await page.textContent('#clients-action');
    if (response.ok()) {
      assert.match(said, /^Disconnected watcher-1\./);
      await page.waitForSelector('#clients-table tr[data-client="watcher-1"]', { state: 'detached', timeout: 15000 });
    } else {
      // Until the broker core can disconnect a client, the API says 501.
      assert.equal(response.status(), 501);
      assert.match(said, /cannot disconnect clients yet/);
    }
    assert.deepEqual(unexpected(page, [/HTTP 501: .*\/api\/v1\/clients\/watcher-1/, /status of 501/]), []);
  } finally {
    await watcher.stop();
    await page.context().close();
  }
});

test('a signed-in user who is not an admin sees $SYS counts and why there is no table', { timeout: 60000 }, async () => {
  const page = await openPage(browser, `${broker.http}/#clients`);
  try {
    await signIn(page, 'alice', 'alice-secret');
    await page.waitForFunction(() => document.body.dataset.monitor === 'connected');
    await page.waitForFunction(() => /alice is not an admin/.test(document.querySelector('#clients-note').textContent));
    assert.equal(await page.getAttribute('#view-clients', 'data-mode'), 'sys');
    await page.waitForFunction(() => /\d+ connected/.test(document.querySelector('#clients-summary').textContent), null, { timeout: 15000 });
    assert.deepEqual(unexpected(page, [/HTTP 403: .*\/api\/v1\/(stats|clients)/, /status of 403/]), []);
  } finally {
    await page.context().close();
  }
});
