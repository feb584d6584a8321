#!/usr/bin/env bash
# Install Debian's chromium + chromium-driver for the end-to-end browser test when missing.
# Never fails: if the browser cannot be installed (not root, no apt, offline), the test skips with a message.
set -u

have_browser() {
    [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]
}

if have_browser; then
    exit 0
fi

if [ "$(id -u)" != "0" ]; then
    echo "ensure_browser: chromium/chromedriver missing and not root; the browser test will be skipped" >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_browser: apt-get not available; the browser test will be skipped" >&2
    exit 0
fi

echo "ensure_browser: installing chromium and chromium-driver with apt-get ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || echo "ensure_browser: apt-get update failed" >&2
apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-wqy-microhei >/dev/null 2>&1 \
    || apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
    || echo "ensure_browser: apt-get install chromium chromium-driver failed" >&2

if have_browser; then
    echo "ensure_browser: chromium $(/usr/bin/chromium --version 2>/dev/null | head -1) ready" >&2
else
    echo "ensure_browser: no browser available; the browser test will be skipped" >&2
fi
exit 0
