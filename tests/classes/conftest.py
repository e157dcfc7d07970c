from tests.instances.conftest import FLAVORS, allocation, cloud  # noqa: F401 - fixtures used here
