from trustmesh.cli import main

main()
