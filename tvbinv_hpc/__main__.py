from tvbinv_hpc.cli import main

raise SystemExit(main())
