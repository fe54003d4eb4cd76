from eval.arena.run import main

raise SystemExit(main())
