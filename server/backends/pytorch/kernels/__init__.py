"""Native CPU kernels, compiled from C at first use with the system compiler (torch is the fallback)."""
