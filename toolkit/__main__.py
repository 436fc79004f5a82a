from digitkit.toolkit.cli import main

main()
