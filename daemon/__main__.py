import sys

if sys.argv[1:2] == ["run"]:
    from daemon.runtime.shutdown import catch_early_stop

    catch_early_stop()  # before the heavy imports: a SIGTERM while starting is a clean stop

from daemon.cli import main  # noqa: E402

main()
