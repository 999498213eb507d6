"""AFEP vs OpenFE vs featuretools DFS benchmark (run: ``python -m bench.run``).

Not part of the layered AFEP packages: plain scripts run from the repository root.
"""
