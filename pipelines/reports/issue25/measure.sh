#!/bin/bash
# issue 25, session 24: byte identity at 1e6 across partition sizes and engines, then recovery at 1e6
export DISCOVERY_DATA=/work/shared/data
PY=/work/main/.venv/bin/python
cd /tmp/wt/new
for v in "default:" "p50k:--partition-size 50000" "dask:--engine dask --workers 2"; do
  name=${v%%:*}; args=${v#*:}
  /usr/bin/time -f "$name wall %e s, cpu %U+%S s, peak RSS %M kB" env PYTHONPATH=/tmp/wt/new $PY -m discovery.cli run --n 1000000 --target "bandgap>1.5" --seed 0 --no-plot $args --out /tmp/i25/byteid/$name.csv > /tmp/i25/byteid/$name.log 2>&1
  tail -1 /tmp/i25/byteid/$name.log
done
sha256sum /tmp/i25/byteid/*.csv
cmp /tmp/i25/byteid/default.csv /tmp/i25/byteid/p50k.csv && echo "p50k identical"
cmp /tmp/i25/byteid/default.csv /tmp/i25/byteid/dask.csv && echo "dask identical"
wc -l /tmp/i25/byteid/default.csv
PYTHONPATH=/tmp/wt/new $PY pipelines/bench/bench_generators.py --only lm --sizes 1000000 --seed 1 --skip training --out /tmp/i25/bg1m/bench_generators_lm_1m
echo done
