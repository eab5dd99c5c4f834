"""Analyses over finished runs (base vs tuned): each module turns records into a JSON-safe result dict."""
