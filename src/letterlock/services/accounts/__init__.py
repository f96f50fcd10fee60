"""Accounts: creation, authentication, keys, passwords, deletion and region moves;
operators; address syntax; certificates; initialising a data directory."""
