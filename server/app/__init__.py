"""The gRPC application: servicer, server, health, reflection and the `hangar` command."""
