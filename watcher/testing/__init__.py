"""Real servers on loopback for the tests, the benchmarks and the demo (not used by the daemon)."""
