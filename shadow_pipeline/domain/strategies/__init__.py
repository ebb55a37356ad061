"""Strategies and their profiles."""
