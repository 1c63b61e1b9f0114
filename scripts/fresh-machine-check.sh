#!/usr/bin/env bash
# Proves that a clean Debian 12 needs nothing but the README's commands (issue 18):
#   1. debootstrap a Debian 12 (bookworm) root from Debian's packages;
#   2. copy in a clean clone of this repository's HEAD (committed work only; no ../shared);
#   3. inside it (chroot, with the network): install `make`, then `make bootstrap`;
#   4. inside it again, in a network namespace of its own (`unshare -n`: loopback only, so no
#      server of this machine, its PostgreSQL or Redis included, can be reached): `make test`;
#   5. report each step's time and the suite's result; unmount and remove the root.
#
# Usage (as root):  scripts/fresh-machine-check.sh [PYTEST ARGS...]
#   no arguments: the whole suite (`make test`); arguments narrow it (`make test PYTEST_ARGS=...`),
#   e.g. scripts/fresh-machine-check.sh tests/test_probe_policy.py -k real_media
# Environment: FRESH_PARENT (default /var/tmp) holds the root, which needs about 8 GiB;
#   FRESH_REPORT (default $FRESH_PARENT/reelforge-fresh-check.log) gets the report; FRESH_KEEP=1 keeps the root.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PARENT="${FRESH_PARENT:-/var/tmp}"
REPORT="${FRESH_REPORT:-$PARENT/reelforge-fresh-check.log}"
NEED_GIB=8

[ "$(id -u)" -eq 0 ] || { echo "run as root (debootstrap, chroot, unshare)" >&2; exit 2; }
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
for tool in unshare chroot ip git; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
free_kib=$(df --output=avail -k "$PARENT" | tail -1)
if [ "$free_kib" -lt $((NEED_GIB * 1024 * 1024)) ]; then
  echo "$PARENT has $((free_kib / 1024 / 1024)) GiB free; $NEED_GIB GiB needed (set FRESH_PARENT)" >&2
  exit 2
fi

ROOT="$(mktemp -d "$PARENT/reelforge-fresh.XXXXXX")"
chmod 755 "$ROOT"  # a root directory every account can enter (mktemp makes it 0700)
COMMIT="$(git -C "$REPO" rev-parse HEAD)"
: > "$REPORT"
say() { echo "fresh-machine-check: $*" | tee -a "$REPORT"; }

mounted() { awk -v root="$ROOT" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r; }
cleanup() {
  local status=$?
  for target in $(mounted); do umount -l "$target" 2>/dev/null || true; done
  if [ -n "$(mounted)" ]; then
    # Never rm -rf through a live bind mount of /dev or /sys.
    say "still mounted under $ROOT, left in place: $(mounted | tr '\n' ' ')"
  elif [ "${FRESH_KEEP:-0}" = 1 ]; then
    say "kept $ROOT"
  else
    rm -rf --one-file-system "$ROOT"
  fi
  exit "$status"
}
trap cleanup EXIT

step_start=0
begin() { step_start=$(date +%s); say "$1"; }
took() { echo $(( $(date +%s) - step_start )); }
total_start=$(date +%s)

say "commit $COMMIT, root $ROOT, $(nproc) CPUs, host $(uname -r)"

# 1. A clean Debian 12, the default variant (what a base install has), from Debian's packages.
begin "debootstrap bookworm"
debootstrap bookworm "$ROOT" >"$ROOT.debootstrap.log" 2>&1 \
  || { tail -20 "$ROOT.debootstrap.log" | tee -a "$REPORT"; rm -f "$ROOT.debootstrap.log"; exit 1; }
rm -f "$ROOT.debootstrap.log"
debootstrap_s=$(took)
say "debootstrap: ${debootstrap_s} s, $(du -sh "$ROOT" | cut -f1)"

# Packages' services must not start inside the chroot: they would share this machine's network.
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
chmod +x "$ROOT/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
grep -q localhost "$ROOT/etc/hosts" 2>/dev/null || printf '127.0.0.1 localhost\n::1 localhost\n' >> "$ROOT/etc/hosts"
mount -t proc proc "$ROOT/proc"
mount --rbind /sys "$ROOT/sys" && mount --make-rslave "$ROOT/sys"
mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev"

# 2. A clean clone of the committed HEAD: no .venv, no node_modules, no ../shared beside it.
git clone --quiet --no-hardlinks --no-checkout "$REPO" "$ROOT/root/reelforge"
git -C "$ROOT/root/reelforge" checkout --quiet "$COMMIT"
[ ! -e "$ROOT/root/shared" ] || { say "unexpected /root/shared in the root"; exit 1; }

# This machine reaches the registries through a TLS-inspecting proxy whose CA is in
# /usr/local/share/ca-certificates: the root trusts the same (ca-certificates, which the
# bootstrap installs, merges them) and pip and npm are pointed at the system bundle. A machine
# with direct access to the registries needs none of it; the tests run offline anyway.
tls=()
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  bundle=/etc/ssl/certs/ca-certificates.crt
  tls=("PIP_CERT=$bundle" "SSL_CERT_FILE=$bundle" "REQUESTS_CA_BUNDLE=$bundle"
       "NODE_EXTRA_CA_CERTS=$bundle")
fi

in_root() {
  chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb "${tls[@]}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive /bin/bash -c "cd /root/reelforge && $1"
}

# 3. The set-up, with the network: `make` (a newcomer's one prerequisite), then the bootstrap.
begin "make bootstrap (with the network)"
in_root "apt-get update -qq && apt-get install -y -qq make >/dev/null && make bootstrap" \
  >"$REPORT.bootstrap" 2>&1 || { tail -40 "$REPORT.bootstrap" | tee -a "$REPORT"; exit 1; }
bootstrap_s=$(took)
say "bootstrap: ${bootstrap_s} s (log: $REPORT.bootstrap)"
say "in the root: $(in_root 'python3 --version; .venv/bin/node --version 2>/dev/null || node --version; \
  ls /usr/lib/postgresql; redis-server --version | cut -d" " -f1-3' | tr '\n' ' ')"

# 4. The suite, offline: a network namespace with only its own loopback.
pytest_args=""
for arg in "$@"; do pytest_args+=" $(printf '%q' "$arg")"; done
begin "make test${pytest_args:+ PYTEST_ARGS=$pytest_args} (unshare -n: loopback only)"
set +e
unshare -n /bin/bash -c "
  ip link set lo up
  if ip -o link show | grep -v ': lo:' | grep -q .; then echo 'a link besides lo' >&2; exit 3; fi
  chroot '$ROOT' /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c 'cd /root/reelforge && make test PYTEST_ARGS=\"\$0\"' \"$pytest_args\"
" >"$REPORT.test" 2>&1
test_rc=$?
set -e
test_s=$(took)
summary=$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed|error).* in ' "$REPORT.test" | tail -1)
say "make test: exit $test_rc in ${test_s} s: ${summary:-no pytest summary} (log: $REPORT.test)"
say "total: $(( $(date +%s) - total_start )) s (debootstrap ${debootstrap_s} s, bootstrap ${bootstrap_s} s, tests ${test_s} s)"
[ "$test_rc" -eq 0 ] && say "RESULT: PASS" || say "RESULT: FAIL"
exit "$test_rc"
