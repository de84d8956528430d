"""Tests of retries, fallback, circuit breakers, upstream keys and the fault-injection suite (issue 8)."""
