#!/usr/bin/env bash
# Build the Python 3.12 venv holding ElastAlert2, used by tests/elastalert/check.py to validate exported rules.
#
#   tests/elastalert/setup_venv.sh                  # creates <repo>/.cache/elastalert-venv (idempotent)
#   tests/elastalert/setup_venv.sh --print-python   # prints the Python 3.12 it would use (exit 1: none)
#
# ElastAlert2 2.31 needs Python >= 3.12 and pins elasticsearch==7.10.1 / urllib3<2, so it cannot share the
# project's venv. The interpreter: $ELASTALERT_PYTHON if set, else pyenv's 3.12.1 (PYENV_VERSION=3.12.1
# python3.12) or another 3.12.x it has (also found under $PYENV_ROOT without pyenv on PATH), else python3.12
# on PATH. Nothing is done when the venv's
# elastalert-test-rule exists and requirements.txt is unchanged since the last install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.cache/elastalert-venv"
requirements="$here/requirements.txt"
stamp="$venv/.requirements.sha256"

find_python() {
    local candidate
    if [[ -n "${ELASTALERT_PYTHON:-}" ]]; then
        echo "$ELASTALERT_PYTHON"
        return 0
    fi
    if command -v pyenv >/dev/null 2>&1; then
        local version
        for version in 3.12.1 $(pyenv versions --bare 2>/dev/null | grep -E '^3\.12\.[0-9]+$' || true); do
            candidate="$(PYENV_VERSION="$version" pyenv which python3.12 2>/dev/null || true)"
            if [[ -n "$candidate" && -x "$candidate" ]]; then
                echo "$candidate"
                return 0
            fi
        done
    fi
    # pyenv installed but not on PATH (e.g. make run by a non-login shell)
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.1/bin/python3.12 \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.*/bin/python3.12; do
        if [[ -x "$candidate" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    if candidate="$(command -v python3.12 2>/dev/null)" && "$candidate" -c 'import sys' >/dev/null 2>&1; then
        echo "$candidate"
        return 0
    fi
    return 1
}

is_312() {
    PYENV_VERSION=3.12.1 "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1
}

if [[ "${1:-}" == "--print-python" ]]; then
    python="$(find_python)" && is_312 "$python" && echo "$python"
    exit
fi

digest="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ -x "$venv/bin/elastalert-test-rule" && -f "$stamp" && "$(cat "$stamp")" == "$digest" ]]; then
    echo "elastalert venv is up to date: $venv"
    exit 0
fi

if ! python="$(find_python)"; then
    echo "error: Python 3.12 is needed for ElastAlert2 2.31 and was not found" >&2
    echo "  tried: PYENV_VERSION=3.12.1 pyenv which python3.12, python3.12 on PATH, \$ELASTALERT_PYTHON" >&2
    echo "  install it (pyenv install 3.12.1) or set ELASTALERT_PYTHON=/path/to/python3.12" >&2
    exit 1
fi
if ! is_312 "$python"; then
    echo "error: $python is not Python 3.12 ($("$python" --version 2>&1))" >&2
    exit 1
fi

echo "creating $venv with $python"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
PYENV_VERSION=3.12.1 "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
"$venv/bin/elastalert-test-rule" --help >/dev/null
echo "$digest" >"$stamp"
echo "elastalert venv ready: $venv"
