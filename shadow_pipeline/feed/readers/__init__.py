"""Readers of recorded market data, one module per venue format; each turns files into *source frames*.

A source frame holds the tick fields except ``seq`` (the replayer numbers ticks in emission order), see
docs/tick-schema.md, "Sources". Every reader refuses a file it cannot read with one ``RecordingError`` naming
the file and the line, so that the command line can show it as one ``error:`` line.
"""
