"""The wire protocol: generated stubs, protobuf <-> domain conversion, status codes, config text."""
