from sicl.cli.main import main

raise SystemExit(main())
