#!/usr/bin/env bash
# Makes .venv-localstack, LocalStack in host mode (no Docker) for the `localstack` end-to-end test, from
# scripts/localstack-requirements.txt. localstack-core needs Python >= 3.12, which the project's 3.11 .venv
# is not: LOCALSTACK_PYTHON names one, else the first found of python3.13, python3.12 on PATH and pyenv's.
# Idempotent (a stamp names the requirements' hash). Where no such Python is found or the install fails it
# says so and exits 0: LocalStack is optional, and the test skips with the reason.
set -u

VENV=${LOCALSTACK_VENV:-.venv-localstack}
REQUIREMENTS=scripts/localstack-requirements.txt
STAMP="$VENV/.installed-$(md5sum < "$REQUIREMENTS" | cut -c1-8)"

if [ -e "$STAMP" ]; then
    exit 0
fi

is_recent_python() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

candidates=(${LOCALSTACK_PYTHON:-} python3.13 python3.12)
if command -v pyenv >/dev/null 2>&1; then
    # pyenv's shims answer only for the active versions: ask its installed interpreters, newest first.
    mapfile -t installed < <(ls -d "$(pyenv root)"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV)
    candidates+=("${installed[@]}")
fi
python=""
for candidate in "${candidates[@]}"; do
    if is_recent_python "$candidate"; then
        python=$candidate
        break
    fi
done
if [ -z "$python" ]; then
    echo "localstack-venv: no Python >= 3.12 found (set LOCALSTACK_PYTHON); the localstack test will skip" >&2
    exit 0
fi

echo "localstack-venv: installing LocalStack into $VENV with $("$python" --version)" >&2
rm -rf "$VENV"
# The requirements are a complete freeze, so no resolving (--no-deps); and no compiling of every module
# (--no-compile): LocalStack imports a fraction of them, compiled on first use. A third of the time.
install=(-m pip install --quiet --disable-pip-version-check --no-deps --no-compile -r "$REQUIREMENTS")
if "$python" -m venv "$VENV" && "$VENV/bin/python" "${install[@]}"; then
    touch "$STAMP"
else
    echo "localstack-venv: the install failed; the localstack test will skip" >&2
    rm -rf "$VENV"
fi
exit 0
