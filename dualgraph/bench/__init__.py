"""``python -m dualgraph bench`` and ``python -m dualgraph demo`` (see ``cli.py``, ``demo.py``);
the workloads are defined once in ``workloads.py``."""
