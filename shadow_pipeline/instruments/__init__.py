"""Packaged instrument registry (JSON data; loaded by ``shadow_pipeline.domain.market.instruments``)."""
