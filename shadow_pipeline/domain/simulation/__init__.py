"""The fill simulation and its models."""
