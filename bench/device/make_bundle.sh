#!/usr/bin/env bash
# Build .devsite/: the Python packages `fastasync bench` needs on the 16-core device machine
# that its image lacks (KINDS.md: it has numba, numpy, scipy, click, threadpoolctl, but no
# envpool, gymnasium or scipy-openblas32, and nothing can be fetched there), for its
# Python 3.12, trimmed to fit the device tool's 64 MiB: envpool's core + its atari module,
# envpool-assets' Atari ROMs only, gymnasium, dm-env, dm-tree, optree, scipy-openblas32.
#
# Also py-spy's static binary (.devsite/bin/py-spy, 8 MB) for bench/gil_share.py.
#
#   bash bench/device/make_bundle.sh          # here, where PyPI is reachable (~1 min)
#   then: run(command="bash bench/device/run16.sh", carry=[".devsite"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/../.."
dl=$(mktemp -d)
trap 'rm -rf "$dl"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 \
  --platform manylinux1_x86_64 -d "$dl" \
  envpool==1.2.5 envpool-assets==0.3.0 gymnasium dm-env dm-tree optree farama-notifications \
  scipy-openblas32 py-spy 2>&1 | grep -v "is ignored" || true
rm -rf .devsite && mkdir .devsite
for w in "$dl"/*.whl; do python3 -m zipfile -e "$w" .devsite; done
cd .devsite
# envpool: only the core and the atari module; registration of the other families removed
for d in envpool/*/; do
  case "$(basename "$d")" in atari|python) ;; *) rm -rf "$d" ;; esac
done
printf '"""Entry point (trimmed for fastasync bench: Atari only)."""\n\nimport envpool.atari.registration  # noqa: F401\n' > envpool/entry.py
# envpool-assets: the Atari ROMs only
for d in envpool_assets/*/; do
  case "$(basename "$d")" in atari) ;; *) rm -rf "$d" ;; esac
done
rm -rf scipy_openblas32/include scipy_openblas32/lib/cmake scipy_openblas32/lib/pkgconfig
mkdir -p bin && mv py_spy-*.data/scripts/py-spy bin/ && chmod +x bin/py-spy && rm -rf py_spy-*
find . -name "__pycache__" -prune -exec rm -rf {} +
cd ..
du -sh .devsite
