"""DevBench's own settings, plus one route for the benchmarks' HTTP ceiling (``benchmarks.urls``).

Every process of a benchmark run (this one, Daphne, the Celery worker) uses this module, so the
server under test is DevBench's configuration with one extra, trivial view.
"""

from devbench_site.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.urls"

# ``BENCH_CHANNEL_LAYER=core``: the same run on channels_redis' default layer (lists + BLPOP),
# for the comparison with the pub/sub layer DevBench uses (docs/PERFORMANCE.md).
if env.str("BENCH_CHANNEL_LAYER", default="pubsub") == "core":  # noqa: F405
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "devbench"},  # noqa: F405
        },
    }
