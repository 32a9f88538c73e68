"""Stacking scorers per axis: several reward models and LLM judges, each normalised on the project, weighted into
axes (e.g. helpfulness, harmlessness) and the axes into one composite per pair (issue 19)."""
