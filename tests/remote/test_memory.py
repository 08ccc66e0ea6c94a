import pytest

from timetravel_kernel.remote import MemoryTransport

from .transport_contract import TransportContract


class TestMemoryTransport(TransportContract):
    @pytest.fixture
    def transport(self):
        return MemoryTransport()
