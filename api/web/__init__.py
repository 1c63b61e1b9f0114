"""The web app (issue 18): static files served by the API itself, at `/` in both modes."""
