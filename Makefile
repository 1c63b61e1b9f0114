# The two commands a newcomer needs: `make demo` (the main job) and `make test` (the suite).
.PHONY: demo test lint bench bootstrap

bootstrap:
	./scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/reelforge sample demo-out/sample.mp4 --seconds 10
	rm -rf demo-out/sample
	.venv/bin/reelforge transcode demo-out/sample.mp4 demo-out/sample
	@echo "open demo-out/sample/master.m3u8 or demo-out/sample/manifest.mpd"

test: bootstrap
	.venv/bin/python -m pytest -q

lint: bootstrap
	.venv/bin/ruff check .

bench: bootstrap
	.venv/bin/python bench/run.py --seconds 30 --rounds 5
