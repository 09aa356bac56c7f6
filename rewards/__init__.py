"""Reward terms (named, weighted, logged one by one) and, later, image reward classifiers."""

from rewards.terms import RewardTerms, tolerance

__all__ = ["RewardTerms", "tolerance"]
