#!/usr/bin/env bash
# Builds the Vue console into xueliang/web_dist (served by the platform). Skips when the build is fresh.
set -euo pipefail
cd "$(dirname "$0")/../web"
[ -f package.json ] || { echo "build-web: no web/package.json yet"; exit 0; }
if ! command -v npm >/dev/null; then
  echo "build-web: npm not found - the console is not built (install Node.js 20 + npm, or run 'make system' as root); the API still works" >&2
  exit 0
fi
stamp=../xueliang/web_dist/.stamp
if [ -f "$stamp" ] && [ -z "$(find . -path ./node_modules -prune -o -newer "$stamp" -type f -print | head -1)" ]; then
  exit 0
fi
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
npm run build
touch "$stamp"
