// Browser side of the harness: attaches one player to the <video>, and records what a test
// needs in window.__harness (errors, the renditions the player saw). play.mjs reads it.
'use strict';

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
  };

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

  function startNative() {
    video.src = src;
    video.play().catch((err) => recordError('video', { fatal: false, message: 'play(): ' + err }));
  }

  async function start() {
    video.muted = true;
    if (mode === 'hlsjs' || mode === 'dashjs') {
      await loadScript(LIBRARIES[mode]);
    }
    if (mode === 'hlsjs') startHlsJs();
    else if (mode === 'dashjs') startDashJs();
    else if (mode === 'native') startNative();
    else throw new Error('unknown mode ' + mode);
    harness.ready = true;
  }

  start().catch((err) => {
    recordError('harness', { fatal: true, message: String(err && err.message ? err.message : err) });
  });
})();
