"""Stage 4: the exported predictions checked against reality, with the MAPE gate."""
