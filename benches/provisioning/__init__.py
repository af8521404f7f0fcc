"""Running the provision script on a host: the protocol (pure), the transport (SSH or local),
the output stream into stored chunks (streaming) and their Channels events (publishing)."""
