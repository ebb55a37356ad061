"""Everything that talks to Redis: URLs and credentials, the embedded server, stream writes."""
