"""Speed and memory figures of the trading core, printed and written to docs/benchmarks.md."""
