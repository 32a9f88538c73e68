"""Annotation quality: agreement between annotators (issue 3)."""
