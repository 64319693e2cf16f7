"""`factory probe`: corruptions of accepted samples scored by the job's own signals
(run.py), metrics (metrics.py), extra signals (signals.py). The corruption kinds are
declared by recipes (factory/recipes/corruptions.py). Imports nothing here."""
