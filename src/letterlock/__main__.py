from letterlock.cli.main import main

main()
