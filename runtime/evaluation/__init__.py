"""Evaluation: retrieval metrics on a split, and the ROC that picks a no-match threshold."""
