#!/usr/bin/env node
// Plays an output folder in a real Chromium and prints ONE JSON line describing what happened.
//
//   node play.mjs --base http://127.0.0.1:PORT/
//                 --mode hlsjs|native|dashjs|shaka-dash|shaka-hls [--timeout 60]
//                 [--until 2.0] [--src URL] [--player URL] [--chromium /usr/bin/chromium]
//
// BASE is the folder URL: BASE/master.m3u8 (hlsjs, native, shaka-hls) or BASE/manifest.mpd
// (dashjs, shaka-dash) is played. The page is BASE's origin + /_player/player.html unless --player says otherwise, so
// the server must mount this folder (tests/player) at /_player/: the player libraries then load
// from the same origin, and nothing is fetched from the internet. --src plays another manifest
// URL instead (a signed URL with a query string, say); it is resolved against BASE.
//
// Exit status: 0 when a result was printed (whether or not it played), 1 when the harness
// itself failed (no browser, no page), 2 on bad arguments.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const MODES = {
  hlsjs: 'master.m3u8',
  native: 'master.m3u8',
  dashjs: 'manifest.mpd',
  'shaka-dash': 'manifest.mpd',
  'shaka-hls': 'master.m3u8',
};

// From RECIPES.md, "A real browser as the player": what works as root on a closed network.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

const POLL_MS = 250;
const LAUNCH_TIMEOUT_MS = 30_000;
const CLOSE_TIMEOUT_MS = 10_000;
const EVALUATE_TIMEOUT_MS = 10_000;

class UsageError extends Error {}

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      base: { type: 'string' },
      mode: { type: 'string' },
      timeout: { type: 'string', default: '60' },
      until: { type: 'string', default: '2.0' },
      src: { type: 'string' },
      player: { type: 'string' },
      chromium: { type: 'string', default: '/usr/bin/chromium' },
    },
    strict: true,
  });
  if (!values.base) throw new UsageError('--base URL is required');
  if (!(values.mode in MODES)) {
    throw new UsageError(`--mode must be one of ${Object.keys(MODES).join(', ')}`);
  }
  const timeout = Number(values.timeout);
  const until = Number(values.until);
  if (!(timeout > 0)) throw new UsageError('--timeout must be a positive number of seconds');
  if (!(until >= 0)) throw new UsageError('--until must be a number of seconds >= 0');
  const base = new URL(values.base.endsWith('/') ? values.base : values.base + '/');
  const src = new URL(values.src ?? MODES[values.mode], base).href;
  const player = new URL(values.player ?? '/_player/player.html', base.origin);
  player.searchParams.set('mode', values.mode);
  player.searchParams.set('src', src);
  return {
    mode: values.mode,
    src,
    pageUrl: player.href,
    timeoutMs: timeout * 1000,
    until,
    executablePath: values.chromium,
  };
}

function withTimeout(promise, ms, what) {
  let timer;
  const expiry = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, expiry]).finally(() => clearTimeout(timer));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Read in the page: everything the result needs from the <video> and the harness record.
function readState() {
  const video = document.getElementById('video');
  const harness = window.__harness || { errors: [], levels: [], audioTracks: [] };
  const quality = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  const finite = (value) => (Number.isFinite(value) ? value : null);
  const ranges = (timeRanges) => {
    const spans = [];
    for (let i = 0; i < timeRanges.length; i += 1) {
      spans.push([timeRanges.start(i), timeRanges.end(i)]);
    }
    return spans;
  };
  // Where each track's media sits on the timeline (issue 13): the MSE players' SourceBuffers,
  // recorded by player.js. A buffer removed from its MediaSource can no longer be read.
  const sourceBuffers = (window.__sourceBuffers || []).map((entry) => {
    const described = {
      mimeType: entry.mimeType,
      kind: entry.mimeType.split('/')[0],
      firstStart: entry.firstStart,
      firstTimestampOffset: entry.firstTimestampOffset,
      buffered: null,
      timestampOffset: null,
      appendMode: null,
      removed: false,
    };
    try {
      described.buffered = ranges(entry.buffer.buffered);
      described.timestampOffset = entry.buffer.timestampOffset;
      described.appendMode = entry.buffer.mode;
    } catch (error) {
      described.removed = true;
    }
    return described;
  });
  return {
    ready: Boolean(harness.ready),
    currentTime: video.currentTime,
    duration: finite(video.duration),
    videoWidth: video.videoWidth,
    videoHeight: video.videoHeight,
    decodedFrames: quality ? quality.totalVideoFrames : null,
    droppedFrames: quality ? quality.droppedVideoFrames : null,
    webkitVideoDecodedByteCount: video.webkitVideoDecodedByteCount ?? null,
    webkitAudioDecodedByteCount: video.webkitAudioDecodedByteCount ?? null,
    readyState: video.readyState,
    paused: video.paused,
    ended: video.ended,
    errors: harness.errors,
    levels: harness.levels,
    audioTracks: harness.audioTracks,
    currentLevel: harness.currentLevel ?? null,
    nativeHlsSupport: harness.nativeHlsSupport ?? null,
    sourceBuffers,
    videoBuffered: ranges(video.buffered),
    firstFrame: harness.firstFrame ?? null,
  };
}

async function play(options) {
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  const userDataDir = await mkdtemp(join(tmpdir(), 'reelforge-chromium-'));
  const pageErrors = [];
  let context;
  let aborting = false;
  const abort = async (signal) => {
    if (aborting) return;
    aborting = true;
    process.stderr.write(`play.mjs: ${signal}, closing the browser\n`);
    await closeQuietly(context);
    await rm(userDataDir, { recursive: true, force: true });
    process.exit(1);
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const signal of signals) process.on(signal, abort);

  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: options.executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      // We handle signals ourselves so the profile folder is removed as well.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
      timeout: Math.min(LAUNCH_TIMEOUT_MS, Math.max(deadline - Date.now(), 1000)),
      viewport: { width: 640, height: 720 },
    });
    const browserVersion = context.browser()?.version() ?? null;
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (error) => {
      pageErrors.push({ source: 'page', fatal: null, message: String(error.message || error) });
    });
    page.on('console', (message) => {
      if (message.type() === 'error') {
        pageErrors.push({ source: 'console', fatal: null, message: message.text() });
      }
    });
    page.on('response', (response) => {
      if (response.status() >= 400) {
        pageErrors.push({
          source: 'http',
          fatal: null,
          status: response.status(),
          url: response.url(),
        });
      }
    });
    page.on('requestfailed', (request) => {
      const failure = request.failure()?.errorText ?? 'unknown';
      // Players cancel requests on purpose (ABR switches, teardown); that is not a fault.
      if (failure !== 'net::ERR_ABORTED') {
        pageErrors.push({ source: 'network', fatal: null, message: failure, url: request.url() });
      }
    });

    const pageLoad = await page.goto(options.pageUrl, {
      waitUntil: 'load',
      timeout: Math.max(deadline - Date.now(), 1000),
    });
    if (!pageLoad || !pageLoad.ok()) {
      throw new Error(
        `player page ${options.pageUrl} answered ${pageLoad ? pageLoad.status() : 'nothing'}; ` +
          'is tests/player mounted at /_player/?',
      );
    }

    // A hung renderer must not hang the harness: each read gets a bound of its own.
    const read = () => withTimeout(page.evaluate(readState), EVALUATE_TIMEOUT_MS, 'reading the page');
    let state = await read();
    let timedOut = true;
    while (Date.now() < deadline) {
      state = await read();
      if (state.currentTime > options.until) {
        timedOut = false;
        break;
      }
      // A fatal error ends playback for good; waiting out the timeout would prove nothing.
      if (state.errors.some((error) => error.fatal === true) || state.ended) {
        timedOut = false;
        break;
      }
      await sleep(POLL_MS);
    }
    const { ready, ...measured } = state;
    return {
      mode: options.mode,
      src: options.src,
      played: measured.currentTime > options.until,
      ...measured,
      errors: [...measured.errors, ...pageErrors],
      playerReady: ready,
      timedOut,
      elapsedMs: Date.now() - started,
      browserVersion,
    };
  } finally {
    await closeQuietly(context);
    await rm(userDataDir, { recursive: true, force: true });
    for (const signal of signals) process.off(signal, abort);
  }
}

async function closeQuietly(context) {
  if (!context) return;
  try {
    await withTimeout(context.close(), CLOSE_TIMEOUT_MS, 'closing the browser');
  } catch (error) {
    process.stderr.write(`play.mjs: ${error.message}\n`);
    // Last resort: the browser process itself. Playwright kills it on exit too.
    context.browser()?.process?.()?.kill('SIGKILL');
  }
}

async function main() {
  let options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`play.mjs: ${error.message}\n`);
    return 2;
  }
  try {
    const result = await play(options);
    process.stdout.write(JSON.stringify(result) + '\n');
    return 0;
  } catch (error) {
    process.stderr.write(`play.mjs: harness failure: ${error.stack || error}\n`);
    return 1;
  }
}

process.exitCode = await main();
