from buildtools.cli import main

main()
