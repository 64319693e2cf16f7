"""`factory probe`: corruptions of accepted samples scored by the job's own signals
(run.py), corruption kinds (corruptions.py), metrics (metrics.py), extra signals
(signals.py). Imports nothing here: recipes import corruptions.py from their methods."""
