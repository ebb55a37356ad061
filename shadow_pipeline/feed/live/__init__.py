"""The live feed handler (``shadow-pipeline feed``): venue WebSockets to the tick stream, by each venue's rules.

``protocol`` is the interface a venue implements, ``venues`` the registry by venue code, ``connection`` the
connect/reconnect/watchdog loop, ``service`` the run loop and ``publisher`` Redis; docs/feed.md has the rules.
"""
