"""Where partitions of a run execute: in this process (local) or on a Dask cluster."""
