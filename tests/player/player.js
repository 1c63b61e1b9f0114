// Browser side of the harness: attaches one player to the <video>, and records what a test
// needs in window.__harness (errors, the renditions the player saw, where each track's media
// landed on the timeline). play.mjs reads it.
'use strict';

// Every SourceBuffer any player creates, with its MIME type, so the start of each track on the
// media timeline can be read (issue 13: A/V start). This runs before any player library is
// loaded (they are loaded by start() below), so no SourceBuffer escapes it.
window.__sourceBuffers = [];
(function wrapAddSourceBuffer() {
  for (const name of ['MediaSource', 'ManagedMediaSource']) {
    const Source = window[name];
    if (!Source || !Source.prototype.addSourceBuffer) continue;
    const original = Source.prototype.addSourceBuffer;
    Source.prototype.addSourceBuffer = function addSourceBuffer(mimeType) {
      const buffer = original.apply(this, arguments);
      const entry = {
        mimeType: String(mimeType),
        buffer,
        // The first buffered range start seen after an append: the track's first media time
        // before anything could have been evicted.
        firstStart: null,
        firstTimestampOffset: null,
      };
      buffer.addEventListener('updateend', () => {
        if (entry.firstStart !== null) return;
        try {
          if (buffer.buffered.length > 0) {
            entry.firstStart = buffer.buffered.start(0);
            entry.firstTimestampOffset = buffer.timestampOffset;
          }
        } catch (error) {
          // Removed from its MediaSource: nothing more to learn from it.
        }
      });
      window.__sourceBuffers.push(entry);
      return buffer;
    };
  }
})();

(function () {
  const params = new URLSearchParams(location.search);
  const mode = params.get('mode');
  const src = params.get('src');
  const video = document.getElementById('video');

  const harness = {
    mode,
    src,
    ready: false, // the player library is loaded and attached
    errors: [],
    levels: [],
    audioTracks: [],
    currentLevel: null,
    nativeHlsSupport: video.canPlayType('application/vnd.apple.mpegurl'),
  };
  window.__harness = harness;

  function recordError(source, fields) {
    harness.errors.push(Object.assign({ source, time: video.currentTime }, fields));
  }

  // Player libraries are mounted under node_modules/ next to this page (same origin).
  const LIBRARIES = {
    hlsjs: 'node_modules/hls.js/dist/hls.min.js',
    dashjs: 'node_modules/dashjs/dist/modern/umd/dash.all.min.js',
    'shaka-dash': 'node_modules/shaka-player/dist/shaka-player.compiled.js',
    'shaka-hls': 'node_modules/shaka-player/dist/shaka-player.compiled.js',
  };

  // The first frame the compositor presented (requestVideoFrameCallback): its media time is
  // where the picture starts, whatever the SourceBuffers say.
  harness.firstFrame = null;
  if (video.requestVideoFrameCallback) {
    video.requestVideoFrameCallback((now, metadata) => {
      harness.firstFrame = {
        mediaTime: metadata.mediaTime,
        presentedFrames: metadata.presentedFrames,
        currentTime: video.currentTime,
      };
    });
  }

  function loadScript(url) {
    return new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = url;
      script.onload = resolve;
      script.onerror = () => reject(new Error('could not load ' + url));
      document.head.appendChild(script);
    });
  }

  video.addEventListener('error', () => {
    const error = video.error;
    recordError('video', {
      fatal: true,
      code: error ? error.code : null,
      message: error ? error.message : 'video error without MediaError',
    });
  });

  function startHlsJs() {
    const Hls = window.Hls;
    if (!Hls.isSupported()) {
      recordError('hlsjs', { fatal: true, message: 'Hls.isSupported() is false (no MSE?)' });
      return;
    }
    const hls = new Hls({ debug: false, enableWorker: true });
    window.__hls = hls;
    hls.on(Hls.Events.ERROR, (_event, data) => {
      recordError('hlsjs', {
        fatal: Boolean(data.fatal),
        type: data.type,
        details: data.details,
        message: data.error ? String(data.error.message || data.error) : data.reason || null,
        url: (data.frag && data.frag.url) || (data.context && data.context.url) || null,
        responseCode: data.response ? data.response.code : null,
      });
    });
    hls.on(Hls.Events.MANIFEST_PARSED, (_event, data) => {
      harness.levels = data.levels.map((level) => ({
        width: level.width,
        height: level.height,
        bitrate: level.bitrate,
        videoCodec: level.videoCodec || null,
        audioCodec: level.audioCodec || null,
        url: level.uri || level.url,
      }));
      video.play().catch((err) => recordError('video', { fatal: false, message: 'play(): ' + err }));
    });
    hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, (_event, data) => {
      harness.audioTracks = data.audioTracks.map((track) => ({
        name: track.name,
        groupId: track.groupId,
        default: track.default,
        url: track.url,
      }));
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => {
      harness.currentLevel = data.level;
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  }

  function startDashJs() {
    const dashjs = window.dashjs;
    const player = dashjs.MediaPlayer().create();
    window.__dash = player;
    const events = dashjs.MediaPlayer.events;
    player.on(events.ERROR, (event) => {
      const error = event.error || {};
      // dash.js does not say whether an error ends playback; a video 'error' event follows
      // when it does.
      recordError('dashjs', {
        fatal: null,
        code: error.code !== undefined ? error.code : null,
        message: error.message || String(event.error),
      });
    });
    player.on(events.PLAYBACK_ERROR, (event) => {
      const error = event.error || {};
      recordError('dashjs', {
        fatal: null,
        code: error.code !== undefined ? error.code : null,
        message: 'playbackError: ' + (error.message || String(event.error)),
      });
    });
    player.on(events.STREAM_INITIALIZED, () => {
      const describe = (rep) => ({
        id: rep.id,
        width: rep.width,
        height: rep.height,
        bitrate: rep.bandwidth,
        codecs: rep.codecs,
        mimeType: rep.mimeType,
      });
      harness.levels = player.getRepresentationsByType('video').map(describe);
      harness.audioTracks = player.getRepresentationsByType('audio').map(describe);
    });
    player.on(events.QUALITY_CHANGE_RENDERED, (event) => {
      if (event.mediaType === 'video' && event.newRepresentation) {
        harness.currentLevel = event.newRepresentation.id;
      }
    });
    player.initialize(video, src, true);
  }

  async function startShaka() {
    const shaka = window.shaka;
    shaka.polyfill.installAll();
    if (!shaka.Player.isBrowserSupported()) {
      recordError('shaka', { fatal: true, message: 'shaka.Player.isBrowserSupported() is false' });
      return;
    }
    const player = new shaka.Player();
    window.__shaka = player;
    const CRITICAL = shaka.util.Error.Severity.CRITICAL;
    const describe = (error) => ({
      fatal: error.severity === CRITICAL,
      code: error.code,
      category: error.category,
      message: 'shaka error ' + error.code + (error.data ? ' ' + JSON.stringify(error.data) : ''),
    });
    player.addEventListener('error', (event) => recordError('shaka', describe(event.detail)));
    await player.attach(video);
    try {
      await player.load(src);
    } catch (error) {
      // load() rejects with the same shaka.util.Error it may also have dispatched.
      recordError('shaka', error && error.code ? describe(error) : { fatal: true, message: String(error) });
      return;
    }
    const variants = player.getVariantTracks();
    const seen = new Set();
    harness.levels = [];
    for (const track of variants) {
      const key = track.videoId;
      if (seen.has(key)) continue;
      seen.add(key);
      harness.levels.push({
        width: track.width,
        height: track.height,
        bitrate: track.videoBandwidth || track.bandwidth,
        videoCodec: track.videoCodec || null,
        audioCodec: track.audioCodec || null,
      });
    }
    harness.audioTracks = player.getAudioTracks().map((track) => ({
      language: track.language,
      label: track.label,
      codecs: track.codecs || null,
    }));
    player.addEventListener('variantchanged', () => {
      const active = player.getVariantTracks().find((track) => track.active);
      harness.currentLevel = active ? active.videoId : null;
    });
    video.play().catch((err) => recordError('video', { fatal: false, message: 'play(): ' + err }));
  }

  function startNative() {
    video.src = src;
    video.play().catch((err) => recordError('video', { fatal: false, message: 'play(): ' + err }));
  }

  async function start() {
    video.muted = true;
    if (mode in LIBRARIES) {
      await loadScript(LIBRARIES[mode]);
    }
    if (mode === 'hlsjs') startHlsJs();
    else if (mode === 'dashjs') startDashJs();
    else if (mode === 'shaka-dash' || mode === 'shaka-hls') await startShaka();
    else if (mode === 'native') startNative();
    else throw new Error('unknown mode ' + mode);
    harness.ready = true;
  }

  start().catch((err) => {
    recordError('harness', { fatal: true, message: String(err && err.message ? err.message : err) });
  });
})();
