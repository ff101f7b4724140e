"""Offline builders: example and LLM models, engines, and atomic version drops into a repository."""
