import sys

from daemon.runtime.shutdown import catch_early_stop, is_run_command

if is_run_command(sys.argv[1:]):
    catch_early_stop()  # before the heavy imports: a SIGTERM while starting is a clean stop

from daemon.cli import main  # noqa: E402

main()
