"""Running the provision script on a host: the protocol (pure), the transport (SSH or local)
and the streaming of output into stored chunks and Channels events."""
