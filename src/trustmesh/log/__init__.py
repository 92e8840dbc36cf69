"""The transparency log: RFC 9162 Merkle trees, a persistent store, C2SP
checkpoints and receipts (C2SP tlog-proofs), shared by the node, the watcher and
clients.

- :mod:`trustmesh.log.merkle`: the reference RFC 9162 functions (hashes, proofs, verifiers);
- :mod:`trustmesh.log.store`: the durable append-only store (SQLite or PostgreSQL);
- :mod:`trustmesh.log.checkpoint`: C2SP tlog-checkpoint bodies as C2SP signed notes;
- :mod:`trustmesh.log.compact`: compact ranges, and a whole batch's inclusion proofs;
- :mod:`trustmesh.log.tlog_proof`: the C2SP tlog-proof format;
- :mod:`trustmesh.log.receipt`: receipts, tlog-proofs checked against a log's key.
"""
