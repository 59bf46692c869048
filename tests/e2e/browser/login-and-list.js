#!/usr/bin/env node
// Opens the qBittorrent WebUI at --url in Debian's chromium (headless, fresh profile), logs in with
// the form and waits until the torrent table lists a row containing --expect.
//
//   node login-and-list.js --url http://127.0.0.1:PORT/ --username U --password P \
//        --expect NAME --screenshot /path/shot.png [--timeout 30000] [--chromium /usr/bin/chromium] \
//        [--trust-spki BASE64]
//
// --trust-spki makes chromium accept the one certificate whose public key has that SHA-256 (for an
// https:// --url with a test certificate); nothing else is exempted from its checks.
// Prints one JSON object on stdout ({ok, rows, cookies, error, ...}) and exits 0 when the row was
// seen, 1 otherwise. Selectors hold for the WebUI of qBittorrent 4.5 to 5.3.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

function parseArgs(argv) {
  const args = { timeout: '30000', chromium: '/usr/bin/chromium', 'trust-spki': '' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    if (!key.startsWith('--') || i + 1 >= argv.length) throw new Error(`bad argument ${key}`);
    args[key.slice(2)] = argv[i + 1];
  }
  for (const k of ['url', 'username', 'password', 'expect', 'screenshot']) {
    if (!args[k]) throw new Error(`--${k} is required`);
  }
  args.timeout = Number(args.timeout);
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const deadline = started + args.timeout;
  const left = () => Math.max(1, deadline - Date.now());
  const result = { ok: false, url: args.url, expect: args.expect, rows: [], failedResponses: [], consoleErrors: [], pageErrors: [] };
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qgs-chromium-'));
  let context;
  const step = (name) => { result.step = name; };
  try {
    step('launch');
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: args.chromium,
      headless: true,
      timeout: left(),
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        ...(args['trust-spki'] ? [`--ignore-certificate-errors-spki-list=${args['trust-spki']}`] : []),
      ],
    });
    result.browserVersion = context.browser() ? context.browser().version() : undefined;
    const page = context.pages()[0] || (await context.newPage());
    page.on('response', (r) => {
      if (r.status() >= 400) result.failedResponses.push(`${r.status()} ${r.request().method()} ${r.url()}`);
    });
    page.on('console', (m) => { if (m.type() === 'error') result.consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => result.pageErrors.push(String(e)));

    step('open login page');
    const first = await page.goto(args.url, { timeout: left(), waitUntil: 'load' });
    if (!first || first.status() !== 200) {
      throw new Error(`GET ${args.url} answered ${first ? first.status() : 'nothing'}, expected 200 with the login page`);
    }
    await page.waitForSelector('#loginform', { timeout: left() });

    step('log in');
    await page.fill('#username', args.username, { timeout: left() });
    await page.fill('#password', args.password, { timeout: left() });
    // The login button: #login up to 4.x, #loginButton from 5.0; both are the form's submit input.
    await page.click('#loginform [type=submit]', { timeout: left() });

    step('wait for the torrent list');
    // After a successful login the page reloads itself into the main UI, which polls
    // api/v2/sync/maindata and fills the table.
    // (A locator, not waitForFunction: the WebUI's CSP forbids the eval that the latter needs.)
    await page.locator('#torrentsTableDiv tbody tr', { hasText: args.expect }).first()
      .waitFor({ state: 'visible', timeout: left() });
    result.rows = await page.$$eval('#torrentsTableDiv tbody tr', (trs) => trs.map((tr) => tr.textContent.trim()));
    result.cookies = (await context.cookies()).map((c) => ({ name: c.name, secure: c.secure, httpOnly: c.httpOnly }));
    result.ok = true;
    step('done');
  } catch (e) {
    result.error = String(e && e.message ? e.message : e).split('\n').slice(0, 8).join('\n');
  }
  result.elapsedMs = Date.now() - started;
  if (context) {
    const page = context.pages()[0];
    if (page) {
      try {
        result.finalUrl = page.url();
        if (!result.ok) {
          result.rows = await page.$$eval('#torrentsTableDiv tbody tr', (trs) => trs.map((tr) => tr.textContent.trim()))
            .catch(() => []);
          result.bodyText = (await page.evaluate(() => document.body ? document.body.innerText : '').catch(() => ''))
            .slice(0, 500);
        }
        await page.screenshot({ path: args.screenshot, timeout: 10000 });
        result.screenshot = args.screenshot;
      } catch (e) {
        result.screenshotError = String(e && e.message ? e.message : e).split('\n')[0];
      }
    }
    await context.close().catch(() => {});
  }
  fs.rmSync(userDataDir, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(result) + '\n');
  return result.ok ? 0 : 1;
}

main().then((code) => process.exit(code), (e) => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(e && e.message ? e.message : e) }) + '\n');
  process.exit(1);
});
