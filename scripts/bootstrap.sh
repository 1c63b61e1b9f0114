#!/usr/bin/env bash
# Installs what Reelforge needs on a fresh Debian/Ubuntu machine and builds .venv/.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=("ffmpeg:ffmpeg" "ffprobe:ffmpeg" "chromium:chromium" "nginx:nginx" "node:nodejs" "npm:npm" "wrk:wrk")
# pdqhash (PDQ perceptual hashes) ships no wheel: pip compiles it.
want_system+=("g++:g++")
# Third-party players the suite plays every output with (issue 13): GStreamer's playbin/playbin3.
want_system+=("gst-launch-1.0:gstreamer1.0-tools" "gst-inspect-1.0:gstreamer1.0-tools")
missing=()
for entry in "${want_system[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry##*:}")
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
