#!/usr/bin/env bash
# Fetches the two SavedModels the compose stack serves, from TensorFlow Serving's own test data,
# into docker/models/ (git-ignored):
#
#   docker/models/half_plus_two/00000123/   y = 0.5 x + 2  (saved_model_half_plus_two_cpu)
#   docker/models/light/00000123/           y = 0.5 x + 3  (saved_model_half_plus_three), the
#                                           "light" model of the degradation chain
#
# Run it yourself, once, before `docker compose up`; nothing in the build or the checks calls it.
# Needs git and network access to github.com. TFS_REF picks the TF Serving tag (default 2.14.1).
set -euo pipefail
cd "$(dirname "$0")"
ref=${TFS_REF:-2.14.1}
testdata=tensorflow_serving/servables/tensorflow/testdata
tmp=$(mktemp -d -t fusebox-models.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# A shallow, sparse clone: only the two model directories are checked out (a few hundred KiB).
git clone --quiet --depth 1 --branch "$ref" --filter=blob:none --sparse \
  https://github.com/tensorflow/serving "$tmp/serving"
git -C "$tmp/serving" sparse-checkout set \
  "$testdata/saved_model_half_plus_two_cpu" "$testdata/saved_model_half_plus_three"

mkdir -p models
rm -rf models/half_plus_two models/light
cp -R "$tmp/serving/$testdata/saved_model_half_plus_two_cpu" models/half_plus_two
cp -R "$tmp/serving/$testdata/saved_model_half_plus_three" models/light
# TF Serving runs as root in its image, but keep the files world-readable for other runtimes.
chmod -R a+rX models/half_plus_two models/light
echo "fetch-models.sh: models in $(pwd)/models:"
find models -mindepth 1 -maxdepth 2 -type d | sort
