"""The model repository: layout scan, config parsing, version policy, lifecycle and polling."""
