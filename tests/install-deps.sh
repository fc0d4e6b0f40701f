#!/usr/bin/env bash
# The system packages the test suite needs (PostgreSQL server and client, nftables, sshd,
# git, rpm, strace...), installed when missing. `make test` and `.ci/run` both call this,
# so the README's two commands are the whole set-up on a fresh machine.
# As root it installs with apt-get (Debian/Ubuntu) or dnf (Fedora); otherwise it names the
# one command to run and fails.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

if have apt-get; then
  missing=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || have initdb || missing+=(postgresql)
  have psql || missing+=(postgresql-client)
  have nft || missing+=(nftables)
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  have ssh || missing+=(openssh-client)
  have git || missing+=(git)
  have ip || missing+=(iproute2)
  have xz || missing+=(xz-utils)
  have zstd || missing+=(zstd)
  have make || missing+=(make)
  have groff || missing+=(groff-base)
  have crontab || missing+=(cron)
  have rpmbuild || missing+=(rpm)
  have strace || missing+=(strace)
  have openssl || missing+=(openssl)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3 python3-venv)
  install=(apt-get install -y -q --no-install-recommends)
  update=(apt-get update -q)
elif have dnf; then
  missing=()
  have initdb || [ -x /usr/bin/initdb ] || missing+=(postgresql-server)
  have psql || missing+=(postgresql)
  have nft || missing+=(nftables)
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  have ssh || missing+=(openssh-clients)
  have git || missing+=(git)
  have ip || missing+=(iproute)
  have xz || missing+=(xz)
  have zstd || missing+=(zstd)
  have make || missing+=(make)
  have groff || missing+=(groff-base)
  have crontab || missing+=(cronie)
  have rpmbuild || missing+=(rpm-build)
  have strace || missing+=(strace)
  have openssl || missing+=(openssl)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3)
  install=(dnf install -y -q)
  update=(true)
else
  echo "tests/install-deps.sh: neither apt-get nor dnf found; install PostgreSQL (server and client), nftables, OpenSSH (server and client), git, iproute2, xz, make, groff, cron, rpm, strace, openssl and python3-venv by hand" >&2
  exit 1
fi

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "tests/install-deps.sh: the tests need: ${missing[*]}" >&2
  echo "  run as root: ${install[*]} ${missing[*]}   (or: sudo make test)" >&2
  exit 1
fi
echo "tests/install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${update[@]}"
"${install[@]}" "${missing[@]}"
