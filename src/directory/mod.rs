//! Domain types and rules of the org directory: ids, validation, invariants. No I/O.
