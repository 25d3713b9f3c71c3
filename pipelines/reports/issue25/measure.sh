#!/bin/bash
# issue 25, session 16: side by side at 1e6, then byte identity at 1e6 across partition sizes and engines
set -x
export DISCOVERY_DATA=/work/shared/data
PY=/work/main/.venv/bin/python
cd /tmp/wt/65f571e
$PY pipelines/bench/bench_run.py --n 1000000 --side-by-side /tmp/wt/32074b2,/tmp/wt/65f571e --label "before issue 25" --label "session 16 (65f571e)" --clear-head-cache
mkdir -p /tmp/i25p/byteid
for v in "default:" "p50k:--partition-size 50000" "dask:--engine dask --workers 2"; do
  name=${v%%:*}; args=${v#*:}
  /usr/bin/time -f "$name wall %e s, cpu %U+%S s, peak RSS %M kB" env PYTHONPATH=/tmp/wt/65f571e $PY -m discovery.cli run --n 1000000 --target "bandgap>1.5" --seed 0 --no-plot $args --out /tmp/i25p/byteid/$name.csv > /tmp/i25p/byteid/$name.log 2>&1
  tail -1 /tmp/i25p/byteid/$name.log
done
sha256sum /tmp/i25p/byteid/*.csv
cmp /tmp/i25p/byteid/default.csv /tmp/i25p/byteid/p50k.csv && echo "p50k identical"
cmp /tmp/i25p/byteid/default.csv /tmp/i25p/byteid/dask.csv && echo "dask identical"
echo done
