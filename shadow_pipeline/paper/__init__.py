"""The paper loop of ``make loop``: an example bot that publishes its orders (``bot.py``), a paper venue that fills
them on market data with hftbacktest (``venue.py``), and the run of both with the shadow and the reconciliation
(``loop.py``). Stand-ins for a desk's bot and venue, so the whole path runs on the embedded default."""
