// A video's buttons: like, comment (a sheet with the thread), share, follow its creator, and
// "more" (not interested, report). Each needs a session; without one they lead to log in.

import { ApiError, api, esc, followed, get, liked, post, session, toast } from './api.js';
import { track } from './events.js';
import { copyText, openSheet } from './sheets.js';

const REPORT_REASONS = ['spam', 'nudity', 'violence', 'hate', 'copyright', 'other'];

export function actionsHtml(video) {
  const mine = session()?.user?.id === video.author.id;
  const isLiked = liked().has(video.id);
  const isFollowed = followed().has(video.author.id);
  return `
    <div class="actions">
      ${mine ? '' : `<button class="act follow${isFollowed ? ' on' : ''}" type="button">${isFollowed ? 'Following' : '+ Follow'}</button>`}
      <button class="act like${isLiked ? ' on' : ''}" type="button" aria-label="Like">♥<span>${video.like_count}</span></button>
      <button class="act comment" type="button" aria-label="Comments">✎<span>${video.comment_count}</span></button>
      <button class="act share" type="button" aria-label="Share">↗<span>${video.share_count}</span></button>
      <button class="act more" type="button" aria-label="More">⋯</button>
    </div>`;
}

function needSession() {
  if (session()) return false;
  toast('Log in first');
  location.hash = '#/login';
  return true;
}

export function videoPageUrl(videoId) {
  return `${location.origin}/#/v/${encodeURIComponent(videoId)}`;
}

export function bindActions(el, video, { onNotInterested = () => {} } = {}) {
  const on = (selector, handler) => el.querySelector(selector)?.addEventListener('click', (event) => {
    event.stopPropagation();
    handler(event.currentTarget).catch((error) => toast(error.message));
  });
  on('.like', async (button) => {
    if (needSession()) return;
    const wasLiked = button.classList.contains('on');
    const answer = await api(wasLiked ? 'DELETE' : 'POST', `/v1/videos/${video.id}/like`);
    liked().set(video.id, answer.liked);
    button.classList.toggle('on', answer.liked);
    button.querySelector('span').textContent = answer.like_count;
  });
  on('.follow', async (button) => {
    if (needSession()) return;
    const was = button.classList.contains('on');
    const answer = await api(was ? 'DELETE' : 'POST', `/v1/users/${video.author.id}/follow`);
    followed().set(video.author.id, answer.following);
    const buttons = new Set([button, ...document.querySelectorAll(`[data-author-id="${video.author.id}"] .follow`)]);
    for (const b of buttons) {
      b.classList.toggle('on', answer.following);
      b.textContent = answer.following ? 'Following' : '+ Follow';
    }
  });
  on('.comment', async (button) => openComments(video, button.querySelector('span')));
  on('.share', async (button) => {
    const lines = [videoPageUrl(video.id)];
    if (video.mp4_url) lines.push(video.mp4_url);
    const text = lines.join('\n');
    const copied = await copyText(text);
    window.__reelforgeShared = text;
    track(video.id, 'share');
    toast(copied ? 'Link copied' : text);
    const count = button.querySelector('span');
    count.textContent = Number(count.textContent) + 1;
  });
  on('.more', async () => openMore(video, onNotInterested));
}

async function openComments(video, counter) {
  const sheet = openSheet('Comments', `
    <ul class="comments"><li class="muted">Loading…</li></ul>
    <form class="comment-form">
      <input name="body" maxlength="2000" placeholder="${session() ? 'Add a comment…' : 'Log in to comment'}" autocomplete="off" required>
      <button type="submit">Post</button>
    </form>`);
  const list = sheet.querySelector('.comments');
  const row = (c) => `<li><a href="#/u/${esc(c.author.id)}">@${esc(c.author.handle)}</a> ${esc(c.body)}</li>`;
  const page = await get(`/v1/videos/${video.id}/comments?limit=50`);
  list.innerHTML = page.comments.length ? page.comments.map(row).join('') : '<li class="muted empty">No comments yet.</li>';
  sheet.querySelector('.comment-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    if (needSession()) return sheet.close();
    const input = event.target.elements.body;
    try {
      const comment = await post(`/v1/videos/${video.id}/comments`, { body: input.value });
      list.querySelector('.empty')?.remove();
      list.insertAdjacentHTML('afterbegin', row(comment));
      input.value = '';
      if (counter) counter.textContent = Number(counter.textContent) + 1;
    } catch (error) {
      toast(error.message);
    }
  });
}

function openMore(video, onNotInterested) {
  const sheet = openSheet('More', `
    <button class="wide not-interested" type="button">Not interested</button>
    <form class="report-form">
      <label>Report this video
        <select name="reason">${REPORT_REASONS.map((r) => `<option>${r}</option>`).join('')}</select>
      </label>
      <input name="details" maxlength="1000" placeholder="Details (optional)">
      <button type="submit" class="wide danger">Report</button>
    </form>`);
  sheet.querySelector('.not-interested').addEventListener('click', () => {
    if (needSession()) return sheet.close();
    track(video.id, 'not_interested');
    sheet.close();
    toast('You will see less like this');
    onNotInterested();
  });
  sheet.querySelector('.report-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    if (needSession()) return sheet.close();
    const form = event.target.elements;
    try {
      await post(`/v1/videos/${video.id}/report`, { reason: form.reason.value, details: form.details.value });
      toast('Reported. Thank you.');
    } catch (error) {
      toast(error instanceof ApiError && error.status === 409 ? 'You already reported it' : error.message);
    }
    sheet.close();
  });
}
