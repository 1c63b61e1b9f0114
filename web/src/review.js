// The moderators' review queue: play each held video, approve it or reject it with a reason.

import { esc, get, post, toast } from './api.js';
import { attach } from './player.js';

export function reviewView(root) {
  root.innerHTML = '<div class="page review"><h1>Review queue</h1><div class="queue"><p class="muted">Loading…</p></div></div>';
  const queue = root.querySelector('.queue');
  const players = [];
  (async () => {
    try {
      const page = await get('/v1/moderation/queue?limit=20');
      if (!page.videos.length) {
        queue.innerHTML = '<p class="muted">Nothing waits for review.</p>';
        return;
      }
      queue.innerHTML = page.videos.map(item).join('');
      for (const el of queue.querySelectorAll('.review-item')) bind(el, players);
    } catch (error) {
      queue.innerHTML = `<p class="error">${esc(error.status === 403 ? 'Moderators only.' : error.message)}</p>`;
    }
  })();
  return () => players.forEach((p) => p.destroy());
}

function item(v) {
  const reports = Object.entries(v.reports || {}).map(([k, n]) => `${esc(k)} × ${n}`).join(', ');
  return `
    <article class="review-item" data-video-id="${esc(v.video_id)}" data-hls="${esc(v.hls_url || '')}">
      <div class="review-player">${v.hls_url ? '<button class="play" type="button">▶ Play</button><video playsinline controls hidden></video>' : '<p class="muted">No media to play</p>'}</div>
      <div class="review-info">
        <p><a href="#/u/${esc(v.author.id)}">@${esc(v.author.handle)}</a> ${esc(v.caption)}</p>
        <p class="muted">Why: ${esc(v.why.source)}: ${esc(v.why.reason)}${reports ? ` · reports: ${reports}` : ''}${v.appeal ? ` · appeal: ${esc(v.appeal.reason)}` : ''}</p>
        <form class="decide">
          <input name="reason" maxlength="1000" placeholder="Reason (sent to the creator on rejection)">
          <div class="row">
            <button type="submit" value="approve">Approve</button>
            <button type="submit" value="reject" class="danger">Reject</button>
          </div>
        </form>
      </div>
    </article>`;
}

function bind(el, players) {
  el.querySelector('.play')?.addEventListener('click', (event) => {
    const video = el.querySelector('video');
    video.hidden = false;
    event.currentTarget.remove();
    players.push(attach(video, el.dataset.hls));
    video.play().catch(() => {});
  });
  el.querySelector('.decide').addEventListener('submit', async (event) => {
    event.preventDefault();
    const decision = event.submitter?.value || 'approve';
    const reason = event.target.elements.reason.value.trim();
    if (decision === 'reject' && !reason) {
      toast('Say why it is rejected');
      return;
    }
    try {
      const answer = await post(`/v1/moderation/${el.dataset.videoId}/decision`, { decision, reason });
      el.classList.add('decided');
      el.querySelector('.decide').innerHTML = `<p>${esc(answer.status)}</p>`;
    } catch (error) {
      toast(error.message);
    }
  });
}
