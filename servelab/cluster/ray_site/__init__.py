"""Start-up settings for the Python processes of a servelab cluster (see sitecustomize.py).

The launchers put this folder first on PYTHONPATH of every Ray process they start, so
Python's site module imports its sitecustomize.py before anything else. Drivers (your
notebook's kernel) do not get it.
"""
