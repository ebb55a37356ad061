"""The stand-in for the exchange feed handler: sources of ticks and the replayer that XADDs them."""
