#!/bin/sh
# Installs the Debian packages the test suite needs, only when they are missing.
set -eu
need=""
command -v dovecot >/dev/null 2>&1 || need="$need dovecot-imapd"
[ -x /usr/lib/postgresql/15/bin/initdb ] || command -v pg_isready >/dev/null 2>&1 || need="$need postgresql"
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages:$need (run as root, or install them)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $need
