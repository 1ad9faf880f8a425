"""Pure tuning logic: part sizing, performance profiles and the concurrency controller."""
