// A creator's profile: counters, follow button, and the grid of their videos (posters).
// One's own profile also shows videos still processing, and the log-out button.

import { api, esc, followed, get, session, toast } from './api.js';
import { logout } from './auth.js';

export function profileView(root, userId) {
  root.innerHTML = '<div class="page profile"><p class="muted">Loading…</p></div>';
  const page = root.firstElementChild;
  (async () => {
    try {
      const [user, grid] = await Promise.all([
        get(`/v1/users/${encodeURIComponent(userId)}`),
        get(`/v1/users/${encodeURIComponent(userId)}/videos?limit=50`),
      ]);
      render(page, user, grid.videos);
    } catch (error) {
      page.innerHTML = `<p class="error">${esc(error.message)}</p>`;
    }
  })();
  return () => {};
}

function tile(video) {
  const poster = video.poster_url ? `<img src="${esc(video.poster_url)}" alt="" loading="lazy">` : '';
  const badge = video.status === 'published' ? '' : `<span class="badge">${esc(video.status)}</span>`;
  const target = video.status === 'published' ? `#/v/${esc(video.id)}` : `#/upload/${esc(video.id)}`;
  return `<a class="tile" href="${target}" data-video-id="${esc(video.id)}">${poster}${badge}<span class="views">▶ ${video.view_count}</span></a>`;
}

function render(page, user, videos) {
  const me = session()?.user?.id === user.id;
  const isFollowed = followed().has(user.id);
  page.innerHTML = `
    <header class="profile-head">
      <div class="avatar">${esc(user.handle.slice(0, 1).toUpperCase())}</div>
      <h1>@${esc(user.handle)}</h1>
      ${user.display_name && user.display_name !== user.handle ? `<p class="muted">${esc(user.display_name)}</p>` : ''}
      <ul class="counts">
        <li><b class="following-count">${user.following_count}</b> Following</li>
        <li><b class="follower-count">${user.follower_count}</b> Followers</li>
        <li><b class="video-count">${user.video_count}</b> Videos</li>
      </ul>
      ${me ? '<button class="logout secondary" type="button">Log out</button>' : `<button class="follow-profile${isFollowed ? ' on' : ''}" type="button">${isFollowed ? 'Following' : 'Follow'}</button>`}
    </header>
    <div class="grid">${videos.map(tile).join('') || '<p class="muted">No videos yet.</p>'}</div>`;
  page.querySelector('.logout')?.addEventListener('click', logout);
  page.querySelector('.follow-profile')?.addEventListener('click', async (event) => {
    const button = event.currentTarget;
    if (!session()) {
      location.hash = '#/login';
      return;
    }
    try {
      const was = button.classList.contains('on');
      const answer = await api(was ? 'DELETE' : 'POST', `/v1/users/${user.id}/follow`);
      followed().set(user.id, answer.following);
      button.classList.toggle('on', answer.following);
      button.textContent = answer.following ? 'Following' : 'Follow';
      page.querySelector('.follower-count').textContent = answer.follower_count;
    } catch (error) {
      toast(error.message);
    }
  });
}
