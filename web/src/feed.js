// The For You and Following feeds: full-screen vertical videos, one swipe / scroll snap /
// arrow key per video. The current video plays muted (tap to unmute); the next one is attached
// and paused, so its manifest and first segments are fetched before the swipe.

import { ApiError, esc, get } from './api.js';
import { WatchSession, flush, track } from './events.js';
import { attach, metrics, onNextFrame } from './player.js';
import { actionsHtml, bindActions } from './actions.js';

let muted = true; // one choice for the whole feed: unmuting once unmutes every next video

export function feedView(root, { type = 'for_you', startVideoId = null } = {}) {
  root.innerHTML = '<div class="feed" tabindex="0" aria-label="videos"></div>';
  const feed = root.firstElementChild;
  const slides = [];
  let cursor = null;
  let exhausted = false;
  let loading = null;
  let current = -1;
  let swipeStart = null;
  let closed = false;

  const observer = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting) activate(slides.findIndex((s) => s.el === entry.target));
      }
    },
    { root: feed, threshold: 0.6 },
  );

  function addSlide(video) {
    if (slides.some((s) => s.video.id === video.id)) return;
    const el = document.createElement('section');
    el.className = 'slide';
    el.dataset.videoId = video.id;
    el.dataset.authorId = video.author.id;
    el.innerHTML = `
      <video playsinline muted loop preload="none" ${video.poster_url ? `poster="${esc(video.poster_url)}"` : ''}></video>
      <button class="unmute" type="button">♪ Tap to unmute</button>
      <div class="meta">
        <a class="author" href="#/u/${esc(video.author.id)}">@${esc(video.author.handle)}</a>
        <p class="caption">${esc(video.caption)}</p>
      </div>
      ${actionsHtml(video)}`;
    const slide = { video, el, videoEl: el.querySelector('video'), handle: null, watch: null };
    slide.videoEl.addEventListener('click', () => tap(slide));
    el.querySelector('.unmute').addEventListener('click', () => tap(slide));
    bindActions(el, video, { onNotInterested: () => removeSlide(slide) });
    feed.append(el);
    slides.push(slide);
    observer.observe(el);
  }

  function message(text) {
    const el = document.createElement('section');
    el.className = 'slide message';
    el.innerHTML = `<p>${text}</p>`;
    feed.append(el);
  }

  async function loadMore() {
    if (exhausted || closed) return;
    if (loading) return loading;
    loading = (async () => {
      try {
        const query = new URLSearchParams({ type, limit: '10' });
        if (cursor) query.set('cursor', cursor);
        const page = (await earlyFirstPage(cursor)) ?? (await get(`/v1/feed?${query}`));
        page.videos.filter((v) => v.hls_url).forEach(addSlide);
        keepPlayers(); // a page that arrives after the swipe still preloads the next video
        cursor = page.next_cursor;
        if (!cursor) {
          exhausted = true;
          message(slides.length ? 'You are all caught up.' : emptyText());
        }
      } catch (error) {
        exhausted = true;
        message(error instanceof ApiError && error.status === 401
          ? 'Log in to see the creators you follow. <a href="#/login">Log in</a>'
          : esc(`Could not load the feed: ${error.message}`));
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  // The first page index.html asked for before the modules loaded, when it is this one.
  async function earlyFirstPage(after) {
    const early = window.__reelforgeFirstFeed;
    delete window.__reelforgeFirstFeed;
    if (!early || after || type !== 'for_you' || startVideoId) return null;
    try {
      const response = await early;
      return response.ok ? await response.json() : null;
    } catch {
      return null;
    }
  }

  function emptyText() {
    return type === 'following'
      ? 'No videos from creators you follow yet.'
      : 'Nothing to watch yet. <a href="#/upload">Upload a video</a>.';
  }

  function ensurePlayer(slide) {
    if (!slide.handle) slide.handle = attach(slide.videoEl, slide.video.hls_url);
  }

  function dropPlayer(slide) {
    if (slide.handle) {
      slide.handle.destroy();
      slide.handle = null;
    }
  }

  // The current video and its neighbours keep a player; the next one is preloaded (paused).
  function keepPlayers() {
    if (current < 0) return;
    slides.forEach((slide, i) => {
      if (Math.abs(i - current) <= 1) ensurePlayer(slide);
      else if (Math.abs(i - current) > 2) dropPlayer(slide);
    });
  }

  function activate(index) {
    if (index < 0 || index === current || closed) return;
    const started = swipeStart ?? performance.now();
    swipeStart = null;
    const previous = slides[current];
    if (previous) {
      previous.videoEl.pause();
      previous.watch?.end();
      previous.watch = null;
    }
    const first = current === -1;
    current = index;
    keepPlayers();
    const slide = slides[index];
    const video = slide.videoEl;
    const preloadedFragments = slide.handle ? slide.handle.fragments : 0;
    slide.watch = new WatchSession(video, slide.video.id);
    track(slide.video.id, 'impression');
    video.muted = muted;
    slide.el.classList.toggle('muted', muted);
    onNextFrame(video, (now) => {
      if (first && metrics.firstFrameMs === null) metrics.firstFrameMs = Math.round(now);
      else if (!first) {
        metrics.swipes.push({ videoId: slide.video.id, ms: Math.round(now - started), preloadedFragments });
      }
    });
    video.play().catch(() => {
      // Autoplay with sound refused: play muted, tap to unmute.
      muted = true;
      video.muted = true;
      slide.el.classList.add('muted');
      video.play().catch(() => {});
    });
    document.body.dataset.currentVideo = slide.video.id;
    if (index >= slides.length - 3) loadMore();
  }

  function tap(slide) {
    const video = slide.videoEl;
    if (video.muted) {
      muted = false;
      video.muted = false;
      slide.el.classList.remove('muted');
    } else if (video.paused) video.play();
    else video.pause();
  }

  function go(index) {
    if (index < 0 || index >= slides.length) {
      if (index >= slides.length) loadMore();
      return;
    }
    swipeStart = performance.now();
    slides[index].el.scrollIntoView({ behavior: 'instant', block: 'start' });
    activate(index);
  }

  function removeSlide(slide) {
    const index = slides.indexOf(slide);
    if (index < 0) return;
    if (index === current) go(index + 1 < slides.length ? index + 1 : index - 1);
    const shown = slides[current];
    slide.watch?.end();
    slide.watch = null;
    dropPlayer(slide);
    observer.unobserve(slide.el);
    slide.el.remove();
    slides.splice(index, 1);
    current = shown && shown !== slide ? slides.indexOf(shown) : -1;
    if (shown && shown !== slide) shown.el.scrollIntoView({ behavior: 'instant', block: 'start' });
    keepPlayers();
  }

  function onKey(event) {
    if (event.target.closest('input, textarea, select, .sheet')) return;
    if (['ArrowDown', 'PageDown', 'j'].includes(event.key)) go(current + 1);
    else if (['ArrowUp', 'PageUp', 'k'].includes(event.key)) go(current - 1);
    else if (event.key === 'm' && slides[current]) tap(slides[current]);
    else return;
    event.preventDefault();
  }
  document.addEventListener('keydown', onKey);

  (async () => {
    if (startVideoId) {
      try {
        const video = await get(`/v1/videos/${encodeURIComponent(startVideoId)}`);
        if (video.hls_url) addSlide(video);
        else message(esc(`This video is ${video.status}.`));
      } catch (error) {
        message(esc(`Video not found (${error.message}).`));
      }
    }
    await loadMore();
    // The first video starts now, not at the observer's first callback (a frame later).
    if (current === -1 && slides.length) activate(0);
    feed.focus({ preventScroll: true });
  })();

  // The view's API for the test and the keyboard: what is shown and how to move.
  window.__reelforgeFeed = {
    next: () => go(current + 1),
    prev: () => go(current - 1),
    current: () => slides[current]?.video,
    count: () => slides.length,
    // Fragments the next video's player loaded so far (preloading: > 0 before the swipe).
    nextFragments: () => slides[current + 1]?.handle?.fragments ?? 0,
    playing: () => {
      const v = slides[current]?.videoEl;
      return v ? { currentTime: v.currentTime, paused: v.paused, muted: v.muted } : null;
    },
  };

  return () => {
    closed = true;
    document.removeEventListener('keydown', onKey);
    observer.disconnect();
    for (const slide of slides) {
      slide.watch?.end();
      dropPlayer(slide);
    }
    delete document.body.dataset.currentVideo;
    flush();
  };
}

