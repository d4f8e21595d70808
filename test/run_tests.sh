#!/usr/bin/env bash
# Run the test suite the way CI does: DDS isolated to this host and a random domain per run,
# and pytest's "no tests collected" (exit 5) counted as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID_OVERRIDE:-$(( (RANDOM % 100) + 1 ))}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export MPLBACKEND=Agg
# A private ROS_HOME: logs and the coordinator's cell journal of this run only (a journal left
# by an earlier, interrupted run would otherwise be published as INTERRUPTED records here).
ROS_HOME="$(mktemp -d "${TMPDIR:-/tmp}/press_cell_ros_home.XXXXXX")"
export ROS_HOME
trap 'rm -rf "$ROS_HOME"' EXIT
export PYTHONDONTWRITEBYTECODE=1
echo "press_cell tests: ROS_DOMAIN_ID=${ROS_DOMAIN_ID}, discovery LOCALHOST, ${RMW_IMPLEMENTATION}"
.venv/bin/python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "ERROR: pytest collected no tests; that is a failure here." >&2
  exit 1
fi
exit "$status"
