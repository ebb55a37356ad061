"""Checking the shadow against reality: an independent engine (hftbacktest), a bot's actual fills, prediction
accuracy, the queue model's fit to real fills and its sensitivity."""
