"""The JSON API's shared parts: one exception handler, pagination, throttles, permissions and
the OpenAPI description (drf-spectacular). The apps' ``api/`` packages hold the endpoints."""
