#!/usr/bin/env bash
# Install Debian's chromium + chromium-driver for the end-to-end browser test when missing, and check that the two
# belong together (same major version) and that the driver starts.
#
# A developer's run (PARTYQA_TEST_STRICT unset): never fails; without a usable browser the browser tests skip with a
# message. CI (PARTYQA_TEST_STRICT=1, set by .ci/run): exits 1 with the reason, so `make test` stops before pytest.
# CHROMIUM / CHROMEDRIVER name other binaries than /usr/bin/chromium and /usr/bin/chromedriver (the browser test
# reads the same variables).
set -u

DEFAULTS=1
[ -n "${CHROMIUM:-}${CHROMEDRIVER:-}" ] && DEFAULTS=0  # named binaries: check them, install nothing
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
STRICT="${PARTYQA_TEST_STRICT:-0}"

unusable() {  # $1: the reason. Strict: fail loudly; otherwise warn and let the browser tests skip.
    if [ "$STRICT" = "1" ]; then
        echo "ensure_browser: FAILED (PARTYQA_TEST_STRICT=1, CI requires the browser tests): $1" >&2
        exit 1
    fi
    echo "ensure_browser: $1; the browser tests will be skipped" >&2
    exit 0
}

have_browser() {
    [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]
}

major() {  # $1 binary, $2 the word its "--version" line starts with: the major version, empty if it does not answer
    local line
    line="$("$1" --version 2>/dev/null | head -1)" || return 0
    case "$line" in
        *"$2"*) echo "$line" | grep -oE '[0-9]+\.[0-9.]+' | head -1 | cut -d. -f1 ;;
    esac
}

if ! have_browser; then
    if [ "$DEFAULTS" = "0" ]; then
        unusable "$CHROMIUM or $CHROMEDRIVER is not an executable file"
    fi
    if [ "$(id -u)" != "0" ]; then
        unusable "$CHROMIUM or $CHROMEDRIVER missing and not root (cannot apt-get install chromium chromium-driver)"
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        unusable "$CHROMIUM or $CHROMEDRIVER missing and apt-get is not available"
    fi
    echo "ensure_browser: installing chromium and chromium-driver with apt-get ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || echo "ensure_browser: apt-get update failed" >&2
    apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-wqy-microhei >/dev/null 2>&1 \
        || apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
        || echo "ensure_browser: apt-get install chromium chromium-driver failed" >&2
    have_browser || unusable "no browser after apt-get install ($CHROMIUM, $CHROMEDRIVER)"
fi

browser_major="$(major "$CHROMIUM" Chrom)"
driver_major="$(major "$CHROMEDRIVER" ChromeDriver)"
[ -n "$browser_major" ] || unusable "$CHROMIUM --version does not answer as Chromium"
[ -n "$driver_major" ] || unusable "$CHROMEDRIVER --version does not answer as ChromeDriver"
[ "$browser_major" = "$driver_major" ] \
    || unusable "chromium $browser_major and chromedriver $driver_major differ (upgrade both: apt-get install chromium chromium-driver)"
echo "ensure_browser: chromium $browser_major with its chromedriver ready" >&2
exit 0
