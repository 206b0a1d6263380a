from keepwarm.cli import main

main()
