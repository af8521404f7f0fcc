"""DevBench's PostgreSQL backend (``ENGINE: devbench_site.postgresql``): Django's, reading
``timestamptz`` columns with psycopg's C loader (see ``base``)."""
