#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
# Idempotent: installs it with apt-get when missing and we are allowed to; exit 0 when it is present.
# CHROMIUM names another binary to look for (the tests point it at one that does not exist).
set -u

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: $CHROMIUM is missing; installing Debian's chromium with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq chromium; }; then
        echo "ensure-chromium: apt-get could not install chromium" >&2
    fi
else
    # Single quotes: backticks inside double quotes would run the command they name (`make test`, again).
    echo "ensure-chromium: $CHROMIUM is missing and cannot be installed here (needs root and apt-get)." >&2
    echo '  Install it yourself, e.g.: sudo apt-get install chromium' >&2
    echo '  `make test` needs it; `pytest` run by hand skips the browser tests without it.' >&2
fi

if [ -x "$CHROMIUM" ]; then
    exit 0
fi
echo "ensure-chromium: $CHROMIUM is still not available" >&2
exit 1
