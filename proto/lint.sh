#!/usr/bin/env bash
# Lints the shardmap.v1 protos with buf (STANDARD rules, see src/main/proto/buf.yaml).
# buf comes from the npm registry (@bufbuild/buf) into proto/.buf/, so only node and npm are needed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$here/.buf"
if [ ! -x "$tools/node_modules/.bin/buf" ]; then
  command -v npm >/dev/null 2>&1 || { echo "proto/lint.sh: npm is needed to install buf" >&2; exit 2; }
  mkdir -p "$tools"
  (cd "$tools" && npm install --silent --no-audit --no-fund @bufbuild/buf@1 >/dev/null)
fi
cd "$here/src/main/proto"
"$tools/node_modules/.bin/buf" lint
echo "buf lint: clean"
