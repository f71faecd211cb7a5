"""Benchmarks: the engine against a hand-written Temporal workflow, in the same run.

``python -m bench`` (or ``playbook-bench``) runs the five scenarios of issue 6 and prints
engine / baseline ratios; see bench/README.md and bench/RESULTS.md.
"""
