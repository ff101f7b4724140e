"""Generated stubs (`python -m server.protocol.codegen`), registered in Hangar's private descriptor pool.

Our messages share their full names with tritonclient's (`inference.ModelInferRequest`), so both sets of
stubs live in one process only if ours stay out of protobuf's default pool. Serve reflection from `POOL`.
"""

from __future__ import annotations

import threading
from typing import Any

from google.protobuf import descriptor_pool, symbol_database
from google.protobuf.internal import builder

POOL = descriptor_pool.DescriptorPool()
_SYM_DB = symbol_database.SymbolDatabase(pool=POOL)
_LOCK = threading.Lock()


def build_messages(file_descriptor: Any, module_name: str, module_globals: dict[str, Any]) -> None:
    """protobuf's builder, but registering classes with POOL's symbol database instead of the default one.

    The pure-Python protobuf runtime would otherwise copy every descriptor into the default pool, where
    tritonclient's and grpc_health's identically named messages already live.
    """
    with _LOCK:
        saved = builder._sym_db
        builder._sym_db = _SYM_DB
        try:
            builder.BuildTopDescriptorsAndMessages(file_descriptor, module_name, module_globals)
        finally:
            builder._sym_db = saved
