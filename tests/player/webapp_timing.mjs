#!/usr/bin/env node
// Measures the web app in a real Chromium at a phone-sized viewport and prints ONE JSON line:
// for each of LOADS page loads (a fresh browser profile each: cold HTTP cache), the time from
// navigation start to the first video frame presented (requestVideoFrameCallback), then for
// each swipe (ArrowDown, once the next video is preloaded) the time from the swipe to that
// video's first frame presented. Used by bench/webapp_timing.py.
//
//   node webapp_timing.mjs --base http://127.0.0.1:PORT [--loads 5] [--swipes 4]

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    loads: { type: 'string', default: '5' },
    swipes: { type: 'string', default: '4' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
const base = values.base.replace(/\/$/, '');
const loads = [];
const warmLoads = [];
const breakdowns = [];
// Where the first load's time went: when each piece had arrived (ms since navigation start).
function breakdown() {
  const entries = performance.getEntriesByType('resource');
  const first = (test) => entries.find((e) => test(e.name));
  const end = (entry) => (entry ? Math.round(entry.responseEnd) : null);
  const nav = performance.getEntriesByType('navigation')[0];
  return {
    html: nav ? Math.round(nav.responseEnd) : null,
    hlsjs: end(first((u) => u.includes('/vendor/hls.js/'))),
    domContentLoaded: nav ? Math.round(nav.domContentLoadedEventEnd) : null,
    feed: end(first((u) => u.includes('/v1/feed'))),
    master: end(first((u) => u.endsWith('master.m3u8'))),
    firstSegment: end(first((u) => u.endsWith('.m4s'))),
    firstFrame: window.__reelforge.firstFrameMs,
  };
}
const swipes = [];
let browserVersion = null;
for (let n = 0; n < Number(values.loads); n += 1) {
  const profile = await mkdtemp(join(tmpdir(), 'reelforge-timing-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: values.chromium, headless: true, args: ARGS,
    viewport: { width: 390, height: 844 }, hasTouch: true,
  });
  try {
    browserVersion = context.browser()?.version() ?? null;
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${base}/`, { waitUntil: 'load' });
    await page.waitForFunction(() => window.__reelforge?.firstFrameMs != null, null, { timeout: 30_000 });
    loads.push(await page.evaluate(() => window.__reelforge.firstFrameMs));
    breakdowns.push(await page.evaluate(breakdown));
    for (let s = 0; s < Number(values.swipes); s += 1) {
      const more = await page.evaluate(() => window.__reelforgeFeed.count() > window.__reelforge.swipes.length + 1);
      if (!more) break;
      await page.waitForFunction(() => window.__reelforgeFeed.nextFragments() > 0, null, { timeout: 30_000 });
      await page.waitForTimeout(300); // a person watches a moment before swiping
      await page.keyboard.press('ArrowDown');
      await page.waitForFunction((k) => window.__reelforge.swipes.length > k, s, { timeout: 30_000 });
    }
    swipes.push(...(await page.evaluate(() => window.__reelforge.swipes)));
    // The same page again in the same profile: the app and hls.js come from the HTTP cache.
    await page.goto(`${base}/?again=${n}`, { waitUntil: 'load' });
    await page.waitForFunction(() => window.__reelforge?.firstFrameMs != null, null, { timeout: 30_000 });
    warmLoads.push(await page.evaluate(() => window.__reelforge.firstFrameMs));
  } finally {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  }
}
process.stdout.write(JSON.stringify({ browserVersion, loads, warmLoads, breakdowns, swipes }) + '\n');
