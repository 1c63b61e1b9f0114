"""Helpers shared by the tests: media fixtures, probes, servers and a real-browser player."""
