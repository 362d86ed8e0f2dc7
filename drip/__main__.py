from drip.cli import main

main()
