"""The command line front-end (`letterlock`)."""
