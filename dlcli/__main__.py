from dlcli.cli.main import main

main()
