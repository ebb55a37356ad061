"""The live shadow's windows held to the hourly batch (the record of truth): docs/live-shadow.md."""
