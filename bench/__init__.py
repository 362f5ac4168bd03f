"""`python -m bench`: Assay against a hand-written baseline on the same data and workloads."""
