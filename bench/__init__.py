"""Benchmark: reelforge against the ffmpeg command a user would run instead (see README.md)."""
