"""Report Arena (paper, "Report Arena"): LLM-judge pairwise battles between models' reports,
actively sampled, ranked by an inverse-propensity-weighted Bradley-Terry fit with intervals."""
