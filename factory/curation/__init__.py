"""Curation over the store: near and semantic dedup, decontamination, composite quality
scores. A pass computes everything in memory and replaces the job's results in one
transaction, so a failing pass leaves the previous state."""
