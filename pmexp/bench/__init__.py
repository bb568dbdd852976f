"""GPU micro-benchmarks (scripts that print and save numbers; never timed tests)."""
