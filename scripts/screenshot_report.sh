#!/usr/bin/env bash
# Open a report.html in a real headless browser (Chromium, Debian package `chromium`) and save a screenshot:
#   bash scripts/screenshot_report.sh runs/demo/report.html docs/report-html.png [WIDTHxHEIGHT]
# Fails (non-zero) when the browser cannot load the page or writes no image.
set -euo pipefail
page=$(realpath "$1"); shot=$(realpath -m "$2"); size=${3:-1280x2600}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "no Chromium: apt-get install chromium" >&2; exit 2; }
rm -f "$shot"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=3000 \
  --window-size="${size/x/,}" --screenshot="$shot" "file://$page" >/dev/null 2>&1
[ -s "$shot" ] || { echo "no screenshot written" >&2; exit 1; }
echo "$shot"
