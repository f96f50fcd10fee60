"""Storage: the directory (address -> region, operator records) and one cell per region
(metadata store + blob store). Contracts live in :mod:`letterlock.storage.contracts`."""
