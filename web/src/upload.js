// Upload: pick a file, send it with tus (resumable: an interrupted upload of the same file
// continues where it stopped), caption and privacy, then the processing state live until
// the video is playable, or the reason it was not.

import { ApiError, esc, get, post, session, toast } from './api.js';
import { attach, metrics } from './player.js';

const TYPES = { mp4: 'video/mp4', m4v: 'video/mp4', mov: 'video/quicktime', webm: 'video/webm', mkv: 'video/x-matroska', '3gp': 'video/3gpp', avi: 'video/x-msvideo' };
const CHUNK_BYTES = 8 * 1024 * 1024;
const POLL_MS = 1000;

function fileType(file) {
  return file.type || TYPES[file.name.split('.').pop().toLowerCase()] || 'video/mp4';
}

export function uploadView(root) {
  if (!session()) {
    location.hash = '#/login';
    return () => {};
  }
  root.innerHTML = `
    <div class="page narrow">
      <h1>Upload</h1>
      <form class="upload-form">
        <label class="file">Video file <input name="file" type="file" accept="video/*" required></label>
        <label>Caption <textarea name="caption" maxlength="2200" rows="2"></textarea></label>
        <label>Who can watch
          <select name="privacy"><option value="public">Everyone</option><option value="unlisted">Anyone with the link</option><option value="private">Only me</option></select>
        </label>
        <progress class="upload-progress" max="100" value="0" hidden></progress>
        <p class="upload-text muted"></p>
        <div class="row">
          <button type="submit" class="start">Post</button>
          <button type="button" class="pause secondary" hidden>Pause</button>
        </div>
      </form>
    </div>`;
  const form = root.querySelector('form');
  const bar = form.querySelector('.upload-progress');
  const text = form.querySelector('.upload-text');
  const pause = form.querySelector('.pause');
  let upload = null;
  let paused = false;

  pause.addEventListener('click', () => {
    if (!upload) return;
    paused = !paused;
    if (paused) upload.abort();
    else upload.start();
    pause.textContent = paused ? 'Resume' : 'Pause';
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const file = form.elements.file.files[0];
    if (!file) return;
    const caption = form.elements.caption.value;
    const privacy = form.elements.privacy.value;
    form.querySelector('.start').disabled = true;
    bar.hidden = false;
    pause.hidden = false;
    upload = new window.tus.Upload(file, {
      endpoint: '/v1/uploads/tus',
      headers: { Authorization: `Bearer ${session().token}` },
      metadata: { filename: file.name, filetype: fileType(file) },
      chunkSize: CHUNK_BYTES,
      retryDelays: [0, 1000, 3000, 5000, 10000],
      removeFingerprintOnSuccess: true,
      onProgress(sent, total) {
        bar.value = total ? (sent / total) * 100 : 0;
        (metrics.uploadProgress ||= []).push(bar.value);
        text.textContent = `Uploading… ${(sent / 1048576).toFixed(1)} / ${(total / 1048576).toFixed(1)} MB (${Math.floor(bar.value)} %)`;
      },
      onError(error) {
        text.innerHTML = `<span class="error">Upload failed: ${esc(error.message)}</span>`;
        form.querySelector('.start').disabled = false;
      },
      async onSuccess() {
        const videoId = upload.url.split('/').pop();
        text.textContent = 'Uploaded. Publishing…';
        try {
          await post(`/v1/videos/${videoId}/publish`, { caption, privacy });
          location.hash = `#/upload/${videoId}`;
        } catch (error) {
          text.innerHTML = `<span class="error">Publish failed: ${esc(error.message)}</span>`;
        }
      },
    });
    const previous = await upload.findPreviousUploads();
    if (previous.length) {
      upload.resumeFromPreviousUpload(previous[0]);
      toast('Resuming your earlier upload');
    }
    upload.start();
  });
  return () => {
    if (upload && !paused) upload.abort();
  };
}

// The live state of one's video: processing stage and percent, then playable or why not.
export function statusView(root, videoId) {
  root.innerHTML = `
    <div class="page narrow upload-status" data-video-id="${esc(videoId)}">
      <h1>Your video</h1>
      <p class="stage">Waiting…</p>
      <progress class="processing" max="100" value="0"></progress>
      <p class="reason error"></p>
      <div class="preview" hidden><video playsinline muted loop controls></video></div>
      <p class="links"></p>
    </div>`;
  const page = root.firstElementChild;
  let stopped = false;
  let player = null;
  const poll = async () => {
    if (stopped) return;
    try {
      const video = await get(`/v1/videos/${encodeURIComponent(videoId)}`);
      show(video);
      if (!['published', 'rejected', 'failed', 'deleted'].includes(video.status)) setTimeout(poll, POLL_MS);
    } catch (error) {
      page.querySelector('.reason').textContent = error.message;
      if (!(error instanceof ApiError && error.status === 404)) setTimeout(poll, POLL_MS * 3);
    }
  };
  const show = (video) => {
    page.dataset.status = video.status;
    const stage = page.querySelector('.stage');
    const bar = page.querySelector('.processing');
    if (video.processing) {
      const p = video.processing;
      bar.value = p.percent;
      stage.textContent = `Processing: ${p.stage} ${p.percent} %${p.eta_s != null ? `, about ${p.eta_s} s left` : ''}`;
    } else if (video.status === 'published') {
      bar.value = 100;
      stage.textContent = 'Playable';
      if (!player && video.hls_url) {
        const preview = page.querySelector('.preview');
        preview.hidden = false;
        const el = preview.querySelector('video');
        player = attach(el, video.hls_url);
        el.play().catch(() => {});
        page.querySelector('.links').innerHTML = `<a href="#/v/${esc(video.id)}">Open in the feed</a>`;
      }
    } else if (video.status === 'in_review') {
      stage.textContent = 'Held for review by a moderator';
      page.querySelector('.reason').textContent = video.status_reason;
    } else if (video.status === 'rejected' || video.status === 'failed') {
      stage.textContent = video.status === 'rejected' ? 'Rejected' : 'Processing failed';
      page.querySelector('.reason').textContent = video.status_reason || video.status;
    } else {
      stage.textContent = video.status.replaceAll('_', ' ');
    }
  };
  poll();
  return () => {
    stopped = true;
    player?.destroy();
  };
}
