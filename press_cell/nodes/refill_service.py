"""Service type of the tray refills: coordinator ``~/refill_trays``, sim arm ``~/sim_refill``.

Both take an empty request and answer ``success`` + ``message``: ``std_srvs/srv/Trigger`` where
``std_srvs`` is installed (``ros-std-srvs``), else ``press_cell/srv/ResetFault``, whose request is
empty too and whose response has the same two fields (plus ``cleared_fault``, left empty).
Clients use ``RefillTrays`` from here, so they always match the server.
"""

try:
    from std_srvs.srv import Trigger as RefillTrays
except ImportError:   # std_srvs is not among the venv's wheels yet
    from press_cell.srv import ResetFault as RefillTrays

__all__ = ["RefillTrays"]
