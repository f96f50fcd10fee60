"""ManageSieve (RFC 5804): the front-end mail clients (Thunderbird, Roundcube,
sieve-connect) use to edit an account's filter scripts."""
