"""The configs: `schema.py` types every key of every stage; the YAML files beside it hold the values (the paper's
runs per stage and row, the ablations, the ensembles, and the tiny configs of the quick start)."""
