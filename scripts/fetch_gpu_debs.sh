#!/usr/bin/env bash
# Downloads the Debian packages the GPU machine lacks (it has no network and no simdjson) into .debs/
# (git-ignored), and the Python wheels its tests need into .whl/. Both travel with a device run (`carry`)
# and are unpacked there by scripts/gpu_build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .debs .whl
( cd .debs && apt-get download libsimdjson-dev libsimdjson14 )
# The official openai client and the packages it needs that the GPU image does not carry.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl 'openai==1.*' pydantic pydantic-core annotated-types typing-inspection distro jiter sniffio
ls -la .debs .whl
