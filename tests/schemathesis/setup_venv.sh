#!/usr/bin/env bash
# Build the venv holding Schemathesis, used by tests/test_openapi_fuzz.py to fuzz the API from /openapi.json.
#
#   tests/schemathesis/setup_venv.sh        # creates <repo>/.cache/schemathesis-venv (idempotent)
#
# Schemathesis pins its own hypothesis, jsonschema and requests, so it does not share the project's venv.
# The interpreter: $SCHEMATHESIS_PYTHON if set, else python3. Nothing is done when the venv's schemathesis
# exists and requirements.txt is unchanged since the last install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.cache/schemathesis-venv"
requirements="$here/requirements.txt"
stamp="$venv/.requirements.sha256"

digest="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ -x "$venv/bin/schemathesis" && -f "$stamp" && "$(cat "$stamp")" == "$digest" ]]; then
    echo "schemathesis venv is up to date: $venv"
    exit 0
fi

python="${SCHEMATHESIS_PYTHON:-python3}"
echo "creating $venv with $python"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
"$venv/bin/schemathesis" --version >/dev/null
echo "$digest" >"$stamp"
echo "schemathesis venv ready: $venv"
