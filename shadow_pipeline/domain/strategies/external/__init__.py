"""A bot's own orders: the order intents it publishes (``intents.py``), checked into an :class:`OrderPlan` that the
shadow's order engine (``simulation/order_engine.py``) and the paper venue fill, and the intents a built-in
strategy's sends amount to (``from_sends.py``)."""
