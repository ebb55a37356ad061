"""Frozen copies of earlier code that ``make bench`` measures today's against."""
