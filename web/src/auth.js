// Register, log in (one form, two buttons) and log out.

import { api, esc, session, setSession, toast } from './api.js';

export function authView(root) {
  root.innerHTML = `
    <div class="page narrow">
      <h1>Reelforge</h1>
      <form class="auth-form">
        <label>Handle <input name="handle" autocomplete="username" minlength="3" maxlength="32" pattern="[A-Za-z0-9_.]{3,32}" required></label>
        <label>Password <input name="password" type="password" autocomplete="current-password" minlength="8" required></label>
        <p class="error" role="alert"></p>
        <div class="row">
          <button type="submit" name="action" value="login">Log in</button>
          <button type="submit" name="action" value="register" class="secondary">Create account</button>
        </div>
      </form>
    </div>`;
  const form = root.querySelector('form');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const action = event.submitter?.value || 'login';
    const body = { handle: form.elements.handle.value.trim(), password: form.elements.password.value };
    try {
      const answer = await api('POST', `/v1/auth/${action}`, body, { token: '' });
      setSession({ token: answer.token, user: answer.user, expires_at: answer.expires_at });
      toast(action === 'register' ? `Welcome, @${answer.user.handle}` : `Hello again, @${answer.user.handle}`);
      location.hash = '#/';
    } catch (error) {
      form.querySelector('.error').innerHTML = esc(error.message);
    }
  });
  return () => {};
}

export async function logout() {
  if (session()) {
    try {
      await api('POST', '/v1/auth/logout');
    } catch {
      // the token is dropped here whatever the server said
    }
  }
  setSession(null);
  location.hash = '#/login';
}
