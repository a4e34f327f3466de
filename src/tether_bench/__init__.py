"""Benchmarks of tether, and what they need to run (an emulated cluster, simulated workers)."""
