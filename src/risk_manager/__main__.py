from risk_manager.cli.app import main

main()
