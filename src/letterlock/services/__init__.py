"""Services: one function per use case, shared by every front-end (SMTP, IMAP, HTTP,
command line). Services use storage through its contracts and the leaf libraries
(crypto, policy, audit, mime); they never import a front-end."""
