// Bottom sheets: a panel over the feed, closed by its backdrop, its close button or Escape.

import { esc } from './api.js';

export function openSheet(title, bodyHtml) {
  const root = document.getElementById('sheet-root');
  root.innerHTML = `
    <div class="backdrop"></div>
    <section class="sheet" role="dialog" aria-label="${esc(title)}">
      <header><h2>${esc(title)}</h2><button class="close" type="button" aria-label="Close">✕</button></header>
      <div class="sheet-body">${bodyHtml}</div>
    </section>`;
  const sheet = root.querySelector('.sheet');
  const close = () => {
    root.innerHTML = '';
    document.removeEventListener('keydown', onKey);
  };
  const onKey = (event) => {
    if (event.key === 'Escape') close();
  };
  document.addEventListener('keydown', onKey);
  root.querySelector('.backdrop').addEventListener('click', close);
  root.querySelector('.close').addEventListener('click', close);
  sheet.close = close;
  return sheet;
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = document.createElement('textarea');
    area.value = text;
    document.body.append(area);
    area.select();
    const done = document.execCommand('copy');
    area.remove();
    return done;
  }
}
