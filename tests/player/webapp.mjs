#!/usr/bin/env node
// Drives the web app (`reelforge serve` at BASE) in a real Chromium at a phone-sized viewport,
// as a person would, and prints ONE JSON line with what it saw (issue 18):
// register, upload CLIP through the page (tus, progress bar), wait until it plays, open the
// For You feed (a fresh page load: first frame measured), wait until the next video is
// preloaded, swipe to it (arrow key: swipe → first frame measured), like, follow, comment,
// share; screenshots into OUT.
//
//   node webapp.mjs --base http://127.0.0.1:PORT --clip FILE --out DIR --handle NAME
//                   [--password PW] [--timeout 150] [--chromium /usr/bin/chromium]
//                   [--moderator HANDLE --moderator-password PW --review VIDEO_ID]
//
// With --moderator, it then logs out, logs in as that moderator, plays VIDEO_ID in the
// review queue and rejects it with a reason.
//
// Exit status: 0 with a result (its `failed` says where it stopped, if anywhere), 1 when the
// harness itself failed, 2 on bad arguments.

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];
const PHONE = { width: 390, height: 844 };

function options() {
  const { values } = parseArgs({
    options: {
      base: { type: 'string' },
      clip: { type: 'string' },
      out: { type: 'string' },
      handle: { type: 'string' },
      password: { type: 'string', default: 'correct horse battery' },
      moderator: { type: 'string' },
      'moderator-password': { type: 'string' },
      review: { type: 'string' },
      timeout: { type: 'string', default: '150' },
      chromium: { type: 'string', default: '/usr/bin/chromium' },
    },
  });
  for (const name of ['base', 'clip', 'out', 'handle']) {
    if (!values[name]) throw new Error(`--${name} is required`);
  }
  return { ...values, base: values.base.replace(/\/$/, ''), timeoutMs: Number(values.timeout) * 1000 };
}

async function run(opts) {
  const started = Date.now();
  const deadline = started + opts.timeoutMs;
  const left = () => Math.max(1000, deadline - Date.now());
  const result = { steps: [], errors: [], progress: [], screenshots: [], failed: null };
  await mkdir(opts.out, { recursive: true });
  const profile = await mkdtemp(join(tmpdir(), 'reelforge-webapp-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: opts.chromium,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: PHONE,
      hasTouch: true,
      timeout: 30_000,
    });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: opts.base });
    result.browserVersion = context.browser()?.version() ?? null;
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(30_000);
    page.on('pageerror', (e) => result.errors.push({ source: 'page', message: String(e.message || e) }));
    page.on('console', (m) => {
      // A failed request is logged by the browser too: it is recorded below with its URL.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
        result.errors.push({ source: 'console', message: m.text() });
      }
    });
    page.on('response', (r) => {
      if (r.status() >= 400) {
        result.errors.push({ source: 'http', status: r.status(), method: r.request().method(), url: r.url() });
      }
    });
    // Every watch-event batch the page sent, and what the API answered.
    result.eventBatches = [];
    page.on('response', async (r) => {
      if (r.url().endsWith('/v1/events') && r.request().method() === 'POST') {
        const sent = JSON.parse(r.request().postData() || '{}').events || [];
        const answer = await r.json().catch(() => null);
        result.eventBatches.push({ types: sent.map((e) => e.type), answer });
      }
    });
    page.on('request', (r) => {
      if (!r.url().startsWith(opts.base) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) {
        result.errors.push({ source: 'offsite', url: r.url() });
      }
    });
    const shot = async (name) => {
      const path = join(opts.out, `${String(result.screenshots.length + 1).padStart(2, '0')}-${name}.png`);
      await page.screenshot({ path });
      result.screenshots.push(path);
    };
    // A wait that says what it waited for, and what the feed showed, when it times out.
    const until = async (label, fn, arg) => {
      try {
        await page.waitForFunction(fn, arg, { timeout: Math.min(30_000, left()) });
      } catch (error) {
        const feed = await page.evaluate(() => window.__reelforgeFeed && {
          count: window.__reelforgeFeed.count(),
          next: window.__reelforgeFeed.nextFragments(),
          playing: window.__reelforgeFeed.playing(),
        }).catch(() => null);
        throw new Error(`waiting for ${label}: ${error.message.split('\n')[0]}; feed ${JSON.stringify(feed)}`);
      }
    };
    const step = async (name, work) => {
      const t0 = Date.now();
      try {
        await work();
        result.steps.push({ name, ms: Date.now() - t0 });
      } catch (error) {
        result.failed = `${name}: ${error.message}`;
        await shot(`failed-${name}`).catch(() => {});
        throw error;
      }
    };

    await step('open', async () => {
      await page.goto(`${opts.base}/`, { waitUntil: 'load' });
      await page.waitForSelector('.feed');
      await shot('feed-signed-out');
    });
    await step('register', async () => {
      await page.goto(`${opts.base}/#/login`);
      await page.fill('input[name=handle]', opts.handle);
      await page.fill('input[name=password]', opts.password);
      await shot('register');
      await page.click('button[value=register]');
      await page.waitForFunction(() => location.hash === '#/' && localStorage.getItem('reelforge.session'));
      const session = await page.evaluate(() => JSON.parse(localStorage.getItem('reelforge.session')));
      result.token = session.token;
      result.userId = session.user.id;
    });
    await step('upload', async () => {
      await page.goto(`${opts.base}/#/upload`);
      await page.setInputFiles('input[name=file]', opts.clip);
      await page.fill('textarea[name=caption]', `made by ${opts.handle} in Chromium`);
      await page.click('button.start');
      await page.waitForFunction(() => location.hash.startsWith('#/upload/'), null, { timeout: left() });
      result.uploadedVideoId = page.url().split('#/upload/')[1];
      result.progress = await page.evaluate(() => window.__reelforge.uploadProgress ?? []);
      if (!result.uploadedVideoId) throw new Error('the upload page never moved on to its processing state');
      await shot('processing');
      const stages = new Set();
      while (Date.now() < deadline) {
        const state = await page.evaluate(() => ({
          status: document.querySelector('.upload-status')?.dataset.status,
          stage: document.querySelector('.upload-status .stage')?.textContent,
        }));
        if (state.stage) stages.add(state.stage.replace(/[\d.]+ %.*$/, '').trim());
        if (['published', 'rejected', 'failed', 'in_review'].includes(state.status)) {
          result.uploadStatus = state.status;
          break;
        }
        await page.waitForTimeout(200);
      }
      result.processingStages = [...stages];
      if (result.uploadStatus !== 'published') throw new Error(`the upload ended ${result.uploadStatus ?? 'never'}`);
      await page.waitForFunction(() => document.querySelector('.preview video')?.currentTime > 0.5, null, { timeout: left() });
      await shot('uploaded-playing');
    });
    await step('feed', async () => {
      // A fresh page load, so the first frame is measured from navigation start.
      await page.goto(`${opts.base}/?load=feed#/`, { waitUntil: 'load' });
      await page.waitForFunction(() => window.__reelforge?.firstFrameMs != null, null, { timeout: left() });
      await page.waitForFunction(() => (window.__reelforgeFeed?.playing()?.currentTime ?? 0) > 0.3);
      result.firstVideoId = await page.evaluate(() => window.__reelforgeFeed.current().id);
      await shot('feed-first-video');
    });
    await step('swipe', async () => {
      await until('a second video in the feed', () => window.__reelforgeFeed.count() > 1);
      // Preloaded: the next video's first segment is in before the swipe.
      await until('the next video preloaded', () => window.__reelforgeFeed.nextFragments() > 0);
      await page.keyboard.press('ArrowDown');
      await until('the first frame after the swipe', () => window.__reelforge.swipes.length >= 1);
      // Past one's own video, to someone else's to like and follow.
      for (let i = 0; i < 5; i += 1) {
        const author = await page.evaluate(() => window.__reelforgeFeed.current().author.id);
        if (author !== result.userId) break;
        await until('the next video preloaded', () => window.__reelforgeFeed.nextFragments() > 0);
        await page.mouse.move(PHONE.width / 2, PHONE.height / 2);
        await page.mouse.wheel(0, PHONE.height);
        await until('the first frame after a wheel swipe', (n) => window.__reelforge.swipes.length > n, i + 1);
      }
      await until('the video to play', () => (window.__reelforgeFeed.playing()?.currentTime ?? 0) > 0.3);
      const current = await page.evaluate(() => window.__reelforgeFeed.current());
      result.currentVideoId = current.id;
      result.currentAuthorId = current.author.id;
      await shot('feed-after-swipe');
    });
    const slide = () => page.locator(`.slide[data-video-id="${result.currentVideoId}"]`);
    await step('unmute', async () => {
      await slide().locator('.unmute').click();
      await page.waitForFunction(() => window.__reelforgeFeed.playing()?.muted === false);
    });
    await step('like', async () => {
      await slide().locator('.act.like').click();
      await slide().locator('.act.like.on').waitFor();
      result.likeCountShown = Number(await slide().locator('.act.like span').textContent());
    });
    await step('follow', async () => {
      await slide().locator('.act.follow').click();
      await slide().locator('.act.follow.on').waitFor();
    });
    await step('comment', async () => {
      result.comment = `first! from ${opts.handle}`;
      await slide().locator('.act.comment').click();
      await page.waitForSelector('.sheet .comment-form');
      await page.fill('.sheet input[name=body]', result.comment);
      await page.click('.sheet .comment-form button');
      await page.waitForFunction((text) => [...document.querySelectorAll('.sheet .comments li')].some((li) => li.textContent.includes(text)), result.comment);
      await shot('comments');
      await page.click('.sheet .close');
    });
    await step('share', async () => {
      await slide().locator('.act.share').click();
      await page.waitForFunction(() => window.__reelforgeShared);
      result.shared = await page.evaluate(() => window.__reelforgeShared);
      result.clipboard = await page.evaluate(() => navigator.clipboard.readText()).catch(() => null);
    });
    await step('watch-to-the-end', async () => {
      // The clip is 4 s and loops: its completion and its first loop are sent.
      await until('a loop of the current video', () => (window.__reelforge.events || []).includes('loop'));
    });
    await step('report', async () => {
      for (const expected of ['Reported. Thank you.', 'You already reported it']) {
        await slide().locator('.act.more').click();
        await page.selectOption('.sheet select[name=reason]', 'spam');
        await page.click('.sheet .report-form button[type=submit]');
        await until(`the toast "${expected}"`, (text) => document.getElementById('toast').textContent === text, expected);
      }
      result.reported = true;
    });
    await step('not-interested', async () => {
      const before = await page.evaluate(() => window.__reelforgeFeed.count());
      await slide().locator('.act.more').click();
      await page.click('.sheet .not-interested');
      await until('the video to leave the feed', (id) => !document.querySelector(`.slide[data-video-id="${id}"]`), result.currentVideoId);
      result.feedCountAfterNotInterested = [before, await page.evaluate(() => window.__reelforgeFeed.count())];
    });
    await step('profile', async () => {
      result.metrics = await page.evaluate(() => window.__reelforge);
      // Within the page (a link's hash), so leaving the feed flushes its watch events.
      await page.evaluate((id) => { location.hash = `#/u/${id}`; }, result.currentAuthorId);
      await page.waitForSelector('.profile .grid .tile img');
      result.profileFollowers = Number(await page.textContent('.follower-count'));
      result.profileFollowShown = await page.textContent('.follow-profile');
      await shot('creator-profile');
      // Leaving the feed flushed its watch events.
      await until('the last watch events to be sent', () => !document.body.dataset.currentVideo);
      await page.waitForTimeout(500);
      await page.evaluate(() => { location.hash = '#/following'; });
      await until('the followed creator in the following feed', (id) => document.querySelector(`.slide[data-author-id="${id}"]`), result.currentAuthorId);
      await shot('following-feed');
    });
    if (opts.moderator) {
      await step('logout', async () => {
        await page.evaluate(() => { location.hash = '#/me'; });
        await page.click('.profile .logout');
        await page.waitForFunction(() => location.hash === '#/login' && !localStorage.getItem('reelforge.session'));
      });
      await step('review', async () => {
        await page.fill('input[name=handle]', opts.moderator);
        await page.fill('input[name=password]', opts['moderator-password']);
        await page.click('button[value=login]');
        await page.waitForSelector('[data-nav=review]:not([hidden])');
        await page.click('[data-nav=review]');
        const item = page.locator(`.review-item[data-video-id="${opts.review}"]`);
        await item.waitFor();
        await item.locator('.play').click();
        await until('the held video to play', (id) => document.querySelector(`.review-item[data-video-id="${id}"] video`)?.currentTime > 0.5, opts.review);
        result.rejectReason = 'spoils the ending (web app test)';
        await item.locator('input[name=reason]').fill(result.rejectReason);
        await shot('review-queue');
        await item.locator('button[value=reject]').click();
        await page.locator(`.review-item.decided[data-video-id="${opts.review}"]`).waitFor();
        result.reviewAnswer = await item.locator('.decide').textContent();
      });
    }
    await step('native-hls', async () => {
      // A browser without Media Source Extensions: the page falls back to native HLS.
      const bare = await context.newPage();
      await bare.addInitScript(() => {
        for (const name of ['MediaSource', 'ManagedMediaSource', 'WebKitMediaSource']) {
          Object.defineProperty(window, name, { value: undefined, configurable: true });
        }
      });
      await bare.goto(`${opts.base}/`, { waitUntil: 'load' });
      await bare.waitForFunction(() => (window.__reelforgeFeed?.playing()?.currentTime ?? 0) > 0.5, null, { timeout: Math.min(30_000, left()) });
      result.nativeEngine = await bare.evaluate(() => window.__reelforge.engine);
      await bare.close();
    });
  } catch (error) {
    result.failed = result.failed ?? String(error.stack || error);
  } finally {
    if (context) await context.close().catch(() => {});
    await rm(profile, { recursive: true, force: true });
  }
  result.elapsedMs = Date.now() - started;
  return result;
}

let opts;
try {
  opts = options();
} catch (error) {
  process.stderr.write(`webapp.mjs: ${error.message}\n`);
  process.exit(2);
}
try {
  process.stdout.write(JSON.stringify(await run(opts)) + '\n');
} catch (error) {
  process.stderr.write(`webapp.mjs: harness failure: ${error.stack || error}\n`);
  process.exit(1);
}
