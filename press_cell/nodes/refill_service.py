"""Service type of the tray refills: coordinator ``~/refill_trays``, sim arm ``~/sim_refill``.

Both are ``std_srvs/srv/Trigger`` (empty request; ``success`` + ``message``), so a lab calls
them with ``ros2 service call /coordinator/refill_trays std_srvs/srv/Trigger``. Clients and
servers import ``RefillTrays`` from here so they always agree on the type.
"""

from std_srvs.srv import Trigger as RefillTrays

__all__ = ["RefillTrays"]
