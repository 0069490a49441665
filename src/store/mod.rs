//! redb tables, transactions, the change log, export/import.
