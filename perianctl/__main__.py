from perianctl.cli import main

main()
