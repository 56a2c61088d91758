"""Reading what the agent and its scripts are doing: log files, output, activity."""
