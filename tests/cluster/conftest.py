"""The cluster layer's fixture: one local Ray per test module."""

import pytest


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray for one test module (the submission tests start a Ray head of their own). 4 CPU slots, so
    readers, the checkpoint filter, a replica and writers never wait on each other on a 2-core machine."""
    import ray

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
