"""Benchmarks of tether, and what they need to run (an emulated cluster, simulated workers).

A package beside the runtime, not inside it: tether never imports it; the
`tether bench` commands do, when they run. It uses the runtime as any code
outside it would, by absolute imports of tether's modules; its own modules
import each other relatively.
"""
