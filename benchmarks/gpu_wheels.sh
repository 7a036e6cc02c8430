#!/usr/bin/env bash
# Fills .gpu_wheels/ with the wheels benchmarks/gpu_check.sh needs on the lent GPU machine and
# its image lacks (that machine cannot download anything): our dependencies that the training
# step imports, for its Python 3.12 on x86-64 Linux, each without its own dependencies (the
# image has numpy, protobuf, absl, etils, ...; not portpicker and importlib_resources, which
# grain and etils need) and never jax, jaxlib, flax, optax or orbax (the
# image's CUDA builds stay). About 13 MB. Run it here, then carry .gpu_wheels with the call.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu_wheels && mkdir -p .gpu_wheels
python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_28_x86_64 --platform any \
  -d .gpu_wheels \
  "grain>=0.2.18,<0.3" "array-record" "jraph==0.0.6.dev0" "ml-collections>=1.1,<2" \
  "tensorboardX>=2.6.5,<3" "h5netcdf>=1.3,<2" "python-libsbml>=5.20,<6" portpicker \
  importlib_resources portpicker \
  importlib_resources
du -sh .gpu_wheels && ls .gpu_wheels
