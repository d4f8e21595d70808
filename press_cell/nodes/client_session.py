"""A ROS session for command-line clients: rclpy context, optional in-process cell, client node.

``press-cell assemble``/``demo`` use it to talk to a running cell, or (``sim=True``) to start a
simulated cell in the same process first (``press_cell.nodes.bringup``). The client node spins
on its own executor thread, so blocking action calls (``blocking_action.call_action``) can be
made from the command's main thread.
"""

import threading

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from press_cell.nodes.bringup import BringupConfig, CellBringup


class ClientSession:
    """Context manager: ``with ClientSession('press_cell_cli', sim=True) as node: ...``."""

    def __init__(self, name: str, namespace: str = "", bringup: BringupConfig = None,
                 log_level: str = "") -> None:
        """Prepare; ``bringup`` (optional) is the in-process cell to start first.

        ``log_level`` (e.g. ``"warn"``) sets the ROS log level of every node in the session.
        """
        self.name = name
        self.log_level = log_level
        self.namespace = namespace
        self.bringup_config = bringup
        self.context = Context()
        self.bringup = None
        self.node = None
        self._executor = None
        self._thread = None

    def __enter__(self):
        """Start rclpy, the optional cell, and the client node; return the client node."""
        args = ["--ros-args", "--log-level", self.log_level] if self.log_level else None
        rclpy.init(args=args, context=self.context)
        try:
            if self.bringup_config is not None:
                self.bringup = CellBringup(self.bringup_config, context=self.context)
                self.bringup.start()
            self.node = rclpy.create_node(self.name, namespace=self.namespace or None,
                                          context=self.context)
            self._executor = MultiThreadedExecutor(num_threads=4, context=self.context)
            self._executor.add_node(self.node)
            self._thread = threading.Thread(target=self._spin, name=f"{self.name}-executor",
                                            daemon=True)
            self._thread.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.node

    def _spin(self):
        try:
            self._executor.spin()
        except ExternalShutdownException:
            pass

    def __exit__(self, *exc_info):
        """Stop the client node, the in-process cell (press released first) and rclpy."""
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=5.0)
        if self.node is not None:
            self.node.destroy_node()
        if self.bringup is not None:
            self.bringup.stop()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.context.try_shutdown()
        return False
