#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian 12 machine: the Python package
# with its pinned test dependencies, and Debian's Chromium for the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! command -v chromium >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
"$PYTHON" -m pip install -q --disable-pip-version-check -c requirements/test.txt wheel setuptools
"$PYTHON" -m pip install -q --disable-pip-version-check -c requirements/test.txt -e ".[test]"
