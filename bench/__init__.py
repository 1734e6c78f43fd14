"""Benchmarks of the capture pipeline against Azure's critical path, a plain SDK script, and at scale.

``python -m bench`` (``make bench``) starts the local cloud and devhost itself, runs the scenarios
(S1, baseline, longcopy, scale), writes ``bench/results/<timestamp>.json`` and a PNG plot, and prints
a summary table. See docs/bench.md.
"""
