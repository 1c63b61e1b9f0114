"""The For You recommender models (issue 17), apart from the API: interaction logs and their
temporal split (`data`), ranking metrics with bootstrap intervals (`metrics`), the baselines
(`baselines`: most popular all time and recent, today's v1 score replayed, ItemKNN), iALS
(`mf`), the served two-stage model (`ranker`: iALS retrieval, LightGBM ranking) and the
offline evaluation that compares them (`evaluate`, `reelforge feed-eval`).

Imports nothing from `api/`, `worker` or `cli` (tests/test_layout.py); `api/feed/ranking.py`
takes the v1 formula from `recsys.v1score`.
"""
