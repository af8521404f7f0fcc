"""The benches app's part of the JSON API (``/api/v1/benches/``, ``jobs/``, ``hosts/``)."""
