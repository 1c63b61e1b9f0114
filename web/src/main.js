// The Reelforge web app: a hash router over the views (the server only serves `/`).
//   #/  For You   #/following   #/v/ID a video's page   #/u/ID a profile   #/me
//   #/upload   #/upload/ID its processing   #/login   #/review (moderators)

import { api, session } from './api.js';
import { authView } from './auth.js';
import { feedView } from './feed.js';
import { profileView } from './profile.js';
import { reviewView } from './review.js';
import { statusView, uploadView } from './upload.js';

const view = document.getElementById('view');
let cleanup = () => {};

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [name = '', id = null] = parts;
  cleanup();
  view.innerHTML = '';
  const feedTab = { '': 'for_you', following: 'following', v: 'for_you' }[name];
  document.body.dataset.view = feedTab ? 'feed' : name;
  document.querySelectorAll('[data-tab]').forEach((a) => a.classList.toggle('active', a.dataset.tab === feedTab));
  switch (name) {
    case '':
    case 'following':
      cleanup = feedView(view, { type: feedTab });
      break;
    case 'v':
      cleanup = feedView(view, { type: 'for_you', startVideoId: id });
      break;
    case 'u':
      cleanup = profileView(view, id);
      break;
    case 'me':
      if (session()) cleanup = profileView(view, session().user.id);
      else location.hash = '#/login';
      break;
    case 'login':
      cleanup = authView(view);
      break;
    case 'upload':
      cleanup = id ? statusView(view, id) : uploadView(view);
      break;
    case 'review':
      cleanup = reviewView(view);
      break;
    default:
      location.hash = '#/';
  }
}

async function refreshChrome() {
  const me = session();
  const link = document.getElementById('me-link');
  link.textContent = me ? `@${me.user.handle}` : 'Log in';
  link.href = me ? '#/me' : '#/login';
  const review = document.querySelector('[data-nav="review"]');
  review.hidden = true;
  if (me) {
    try {
      await api('GET', '/v1/moderation/queue?limit=1');
      review.hidden = false;
    } catch {
      // not a moderator
    }
  }
}

addEventListener('hashchange', route);
addEventListener('session', refreshChrome);
refreshChrome();
route();
