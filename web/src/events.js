// Watch events as `POST /v1/events` takes them (api/social/schemas.py EventIn): play, watch_ms
// (progress: the milliseconds watched since the last report), completed, loop, skip, share,
// not_interested; each with an event_id of its own, so a retried batch counts once.

import { api, session } from './api.js';
import { metrics } from './player.js';

const FLUSH_MS = 5000;
let queue = [];
let timer = null;

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

export function track(videoId, type, value) {
  if (!session()) return; // the API records a signed-in viewer's events only
  const event = { event_id: uuid(), video_id: videoId, type };
  if (value !== undefined) event.value = Math.max(0, Math.round(value));
  queue.push(event);
  (metrics.events ||= []).push(type); // what the page sent, for the tests and the curious
  if (!timer) timer = setTimeout(flush, FLUSH_MS);
}

export async function flush() {
  clearTimeout(timer);
  timer = null;
  if (!queue.length || !session()) return;
  const batch = queue.splice(0, 100);
  try {
    await api('POST', '/v1/events', { events: batch });
  } catch (error) {
    if (error.status >= 500 || !error.status) queue.unshift(...batch); // retried: same ids
  }
  if (queue.length) timer = setTimeout(flush, FLUSH_MS);
}

// Leaving the page: what is left goes out with keepalive.
addEventListener('pagehide', () => {
  const token = session()?.token;
  if (!queue.length || !token) return;
  fetch('/v1/events', {
    method: 'POST',
    keepalive: true,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ events: queue.splice(0, 100) }),
  });
});

// One video's watching, from the moment it becomes the current one until it is left.
export class WatchSession {
  constructor(video, videoId) {
    this.video = video;
    this.videoId = videoId;
    this.played = false;
    this.completed = false;
    this.lastTime = 0;
    this.pendingMs = 0;
    this.lastTick = null;
    this.onTime = () => this.tick();
    this.onPlaying = () => {
      if (!this.played) {
        this.played = true;
        track(videoId, 'play');
      }
      this.lastTick = performance.now();
    };
    this.onPause = () => this.account();
    video.addEventListener('timeupdate', this.onTime);
    video.addEventListener('playing', this.onPlaying);
    video.addEventListener('pause', this.onPause);
  }

  account() {
    if (this.lastTick !== null) this.pendingMs += performance.now() - this.lastTick;
    this.lastTick = this.video.paused ? null : performance.now();
    if (this.pendingMs >= 5000) this.report();
  }

  report() {
    if (this.pendingMs >= 1) track(this.videoId, 'watch_ms', Math.min(this.pendingMs, 3_600_000));
    this.pendingMs = 0;
  }

  tick() {
    const { currentTime, duration } = this.video;
    if (Number.isFinite(duration) && duration > 0) {
      // The element loops: a jump back from near the end is one loop, the first is completion.
      if (currentTime + 0.5 < this.lastTime && this.lastTime > duration - 1) {
        if (!this.completed) {
          this.completed = true;
          track(this.videoId, 'completed');
        }
        track(this.videoId, 'loop');
      } else if (!this.completed && currentTime >= duration - 0.3) {
        this.completed = true;
        track(this.videoId, 'completed');
      }
    }
    this.lastTime = currentTime;
    this.account();
  }

  // Left for another video: a skip unless it was watched to the end.
  end() {
    this.account();
    this.report();
    if (this.played && !this.completed) track(this.videoId, 'skip');
    this.video.removeEventListener('timeupdate', this.onTime);
    this.video.removeEventListener('playing', this.onPlaying);
    this.video.removeEventListener('pause', this.onPause);
  }
}
