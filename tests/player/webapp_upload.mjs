#!/usr/bin/env node
// The web app's upload page in a real Chromium, on a throttled uplink, and ONE JSON line:
// signs in with TOKEN (the session the page keeps), picks FILE, pauses once the first tus
// chunk is in, asks the server where the upload stands (HEAD on the tus URL), resumes, then
// waits until the processing state settles and reads what the page says.
//
//   node webapp_upload.mjs --base URL --token TOKEN --user-json JSON --file FILE --out DIR
//                          [--uplink-bytes-per-s 3145728] [--pause-at 70]

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const { values: opts } = parseArgs({
  options: {
    base: { type: 'string' },
    token: { type: 'string' },
    'user-json': { type: 'string' },
    file: { type: 'string' },
    out: { type: 'string' },
    'uplink-bytes-per-s': { type: 'string', default: String(3 * 1024 * 1024) },
    'pause-at': { type: 'string', default: '70' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
const base = opts.base.replace(/\/$/, '');
const result = { progress: [], failed: null, errors: [] };
await mkdir(opts.out, { recursive: true });
const profile = await mkdtemp(join(tmpdir(), 'reelforge-upload-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: opts.chromium, headless: true, args: ARGS, viewport: { width: 390, height: 844 },
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(60_000);
  page.on('pageerror', (e) => result.errors.push(String(e.message || e)));
  const session = { token: opts.token, user: JSON.parse(opts['user-json']) };
  await page.addInitScript((value) => localStorage.setItem('reelforge.session', value), JSON.stringify(session));
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 0, downloadThroughput: -1,
    uploadThroughput: Number(opts['uplink-bytes-per-s']),
  });
  await page.goto(`${base}/#/upload`);
  await page.setInputFiles('input[name=file]', opts.file);
  await page.fill('textarea[name=caption]', 'not really a video');
  await page.click('button.start');
  const sample = async () => {
    const value = await page.evaluate(() => document.querySelector('.upload-progress')?.value ?? null);
    if (value !== null && result.progress.at(-1) !== value) result.progress.push(value);
    return value;
  };
  while ((await sample()) < Number(opts['pause-at'])) await page.waitForTimeout(50);
  await page.click('button.pause');
  result.pausedAt = await sample();
  await page.screenshot({ path: join(opts.out, 'upload-paused.png') });
  // What the server holds now: the tus upload URL the client keeps for resuming.
  result.server = await page.evaluate(async (token) => {
    const key = Object.keys(localStorage).find((k) => k.startsWith('tus::'));
    const url = JSON.parse(localStorage.getItem(key)).uploadUrl;
    const head = await fetch(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', Authorization: `Bearer ${token}` } });
    return { url, status: head.status, offset: Number(head.headers.get('Upload-Offset')), length: Number(head.headers.get('Upload-Length')) };
  }, opts.token);
  await page.waitForTimeout(300);
  await page.click('button.pause'); // now "Resume"
  while (!(await page.evaluate(() => location.hash.startsWith('#/upload/')))) {
    await sample();
    await page.waitForTimeout(50);
  }
  result.videoId = page.url().split('#/upload/')[1];
  // Every value the bar took (the page records each onProgress): the sampling above can miss
  // the last ones, when the page moves on to the processing view within 50 ms.
  result.progress = await page.evaluate(() => window.__reelforge.uploadProgress ?? []);
  await page.waitForFunction(() => ['rejected', 'failed'].includes(document.querySelector('.upload-status')?.dataset.status));
  result.status = await page.evaluate(() => document.querySelector('.upload-status').dataset.status);
  result.stage = await page.textContent('.upload-status .stage');
  result.reason = await page.textContent('.upload-status .reason');
  await page.screenshot({ path: join(opts.out, 'upload-rejected.png') });
} catch (error) {
  result.failed = String(error.stack || error);
} finally {
  await context.close().catch(() => {});
  await rm(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result) + '\n');
