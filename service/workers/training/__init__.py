"""Training runs: downsampling a metric series for display, and comparing runs' curves.

Pure computation on numpy arrays; the store and the API live elsewhere (``service/api/runs.py``,
``service/store``).
"""
