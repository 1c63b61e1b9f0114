// One <video> per slide: hls.js where Media Source Extensions exist, native HLS elsewhere.
// A preloaded player fetches its manifest and first segments while paused (before the swipe),
// and every player records in window.__reelforge what the page measured (README "Web app").

import Hls from '/vendor/hls.js/hls.min.mjs';

export const metrics = (window.__reelforge = window.__reelforge || {
  engine: null,
  firstFrameMs: null, // navigation start → first video frame presented (ms)
  swipes: [], // {videoId, ms, preloadedFragments} per swipe: activation → first frame presented
  errors: [],
});

const HLS_CONFIG = {
  capLevelToPlayerSize: true,
  maxBufferLength: 8,
  backBufferLength: 10,
  startFragPrefetch: true,
};

export function useMse() {
  return Hls.isSupported();
}

// Attach `src` to `video`; returns a handle with destroy() and the fragments loaded so far.
export function attach(video, src) {
  const handle = { fragments: 0, hls: null, destroyed: false };
  video.preload = 'auto';
  if (Hls.isSupported()) {
    metrics.engine = 'hls.js';
    const hls = new Hls(HLS_CONFIG);
    handle.hls = hls;
    hls.on(Hls.Events.FRAG_LOADED, () => {
      handle.fragments += 1;
    });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (data.fatal) {
        metrics.errors.push({ src, type: data.type, details: data.details });
        if (data.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
        else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      }
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    metrics.engine = 'native';
    video.src = src;
    video.load();
  } else {
    metrics.errors.push({ src, type: 'unsupported', details: 'no MSE and no native HLS' });
  }
  handle.destroy = () => {
    handle.destroyed = true;
    if (handle.hls) handle.hls.destroy();
    video.removeAttribute('src');
    video.load();
  };
  return handle;
}

// Call `done(ms)` at the first frame presented after now (requestVideoFrameCallback), or at
// the first 'playing'/'timeupdate' where rVFC does not exist.
export function onNextFrame(video, done) {
  if ('requestVideoFrameCallback' in video) {
    video.requestVideoFrameCallback((now) => done(now));
    return;
  }
  const once = () => {
    video.removeEventListener('timeupdate', once);
    done(performance.now());
  };
  video.addEventListener('timeupdate', once);
}
