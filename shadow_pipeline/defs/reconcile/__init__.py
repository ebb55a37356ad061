"""Stage 4b: the bot's orders one by one, the shadow's outcome of each against the real one."""
