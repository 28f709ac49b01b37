#!/usr/bin/env bash
# Runs the Python suite and the console's unit tests. pytest's exit code 5 ("no tests ran") is an error here.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pytest -p no:cacheprovider "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "run-tests: pytest collected no tests - treating as failure" >&2; exit 1; fi
[ $rc -eq 0 ] || exit $rc
if [ -f web/package.json ] && grep -q '"test"' web/package.json; then
  (cd web && npm test --silent) || exit 1
fi
