from cqrs_demo.runtime.cli import main

raise SystemExit(main())
