#!/usr/bin/env bash
# Refresh the front-end libraries vendored under static/vendor/ from their npm packages.
# The files are committed: the portal never loads anything from a CDN at run time.
set -euo pipefail
HTMX=${HTMX:-2.0.11}
BOOTSTRAP=${BOOTSTRAP:-5.3.9}
SWAGGER_UI=${SWAGGER_UI:-5.35.0}
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/static/vendor"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "htmx.org@$HTMX" "bootstrap@$BOOTSTRAP" "swagger-ui-dist@$SWAGGER_UI" >/dev/null
for f in *.tgz; do mkdir -p "${f%.tgz}" && tar -xzf "$f" -C "${f%.tgz}"; done
mkdir -p "$out"
rm -f "$out"/htmx-*.min.js "$out"/bootstrap-*.min.css "$out"/bootstrap-*.bundle.min.js "$out"/swagger-ui-*
cp "htmx.org-$HTMX/package/dist/htmx.min.js" "$out/htmx-$HTMX.min.js"
cp "bootstrap-$BOOTSTRAP/package/dist/css/bootstrap.min.css" "$out/bootstrap-$BOOTSTRAP.min.css"
cp "bootstrap-$BOOTSTRAP/package/dist/js/bootstrap.bundle.min.js" "$out/bootstrap-$BOOTSTRAP.bundle.min.js"
cp "swagger-ui-dist-$SWAGGER_UI/package/swagger-ui-bundle.js" "$out/swagger-ui-bundle-$SWAGGER_UI.js"
cp "swagger-ui-dist-$SWAGGER_UI/package/swagger-ui.css" "$out/swagger-ui-$SWAGGER_UI.css"
echo "vendored htmx $HTMX, bootstrap $BOOTSTRAP and swagger-ui $SWAGGER_UI into static/vendor/"
