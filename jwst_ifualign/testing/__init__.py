"""Simulated cube_build-like cubes and associations with known truth, for tests, benchmarks and
the example (:mod:`.simulate`)."""
