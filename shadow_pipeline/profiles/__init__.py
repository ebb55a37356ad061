"""Packaged strategy profiles (JSON data; loaded by ``shadow_pipeline.domain.strategies.profiles``)."""
