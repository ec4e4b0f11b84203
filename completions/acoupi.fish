# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_acoupi_global_optspecs
    string join \n home= h/help V/version
end

function __fish_acoupi_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_acoupi_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_acoupi_using_subcommand
    set -l cmd (__fish_acoupi_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c acoupi -n "__fish_acoupi_needs_command" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_needs_command" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_needs_command" -s V -l version -d 'Print version'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "check" -d 'Validate a manifest and report every problem; needs no hardware, broker or writes'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "build" -d 'Compile a manifest into ACOUPI_HOME (atomically; runtime state is kept)'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "worker" -d 'Run one worker of the built program: consume its queues until SIGTERM'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "beat" -d 'Run the scheduler: publish each scheduled task at its wall-clock slot'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "run" -d 'Run beat and every worker in the foreground (building the manifest first, if given)'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "task" -d 'List or run the program\'s tasks'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "workers" -d 'Manage the program\'s queues'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "bench" -d 'Benchmarks that print figures'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "devices" -d 'List audio input devices with their channels and sample rates'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "deploy" -d 'Install and start the built home\'s systemd user units'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "status" -d 'Report the deployment\'s health: units, workers, queues, storage (never opens the microphone)'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "stop" -d 'Stop and disable the units, let workers drain, end the deployment'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "logs" -d 'Show the services\' last log lines (journal, else the files under `log/`)'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "init" -d 'Write a new manifest, step by step (or from an example with --no-prompt)'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "config" -d 'Show the built configuration, or read and change the manifest by dotted path'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "db" -d 'Read the metadata store: recordings, model outputs, detections, or its health'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "detect" -d 'Run the home\'s detectors on WAV files or folders, without a broker'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "import" -d 'Write a manifest equivalent to a home of the Python acoupi (its `default` or `connected` program, or acoupi-batdetect2\'s)'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "models" -d 'Install the model files of acoupi\'s built-in detectors'
complete -c acoupi -n "__fish_acoupi_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand check" -l format -d 'Output format' -r -f -a "human\t'Graphical reports on stderr'
json\t'One JSON document on stdout'
github\t'GitHub Actions workflow annotations on stdout'"
complete -c acoupi -n "__fish_acoupi_using_subcommand check" -l deny -d 'Treat these diagnostics as errors' -r -f -a "warnings\t'Fail on warnings too'"
complete -c acoupi -n "__fish_acoupi_using_subcommand check" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c acoupi -n "__fish_acoupi_using_subcommand build" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand build" -l check -d 'Report whether the home is up to date instead of writing (exit 1 when it is not)'
complete -c acoupi -n "__fish_acoupi_using_subcommand build" -l stdout -d 'Print the generated tree to stdout instead of writing it'
complete -c acoupi -n "__fish_acoupi_using_subcommand build" -l no-apply -d 'On a deployed home, leave the running units as they are (by default the units whose files or spec changed are restarted)'
complete -c acoupi -n "__fish_acoupi_using_subcommand build" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand worker" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand worker" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand beat" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand beat" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand run" -l broker -d 'Use this broker instead of the program\'s: `memory` for in-process queues, or an AMQP URL' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand run" -l microphone -d 'Replace the microphones with a synthetic source (bat-like sweeps), to try a manifest on a machine without its sound card' -r -f -a "synthetic\t'Frequency sweeps like bat calls, paced in real time'"
complete -c acoupi -n "__fish_acoupi_using_subcommand run" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c acoupi -n "__fish_acoupi_using_subcommand task; and not __fish_seen_subcommand_from list run help" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand task; and not __fish_seen_subcommand_from list run help" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand task; and not __fish_seen_subcommand_from list run help" -f -a "list" -d 'List the compiled tasks with their queue, schedule and follow-ups'
complete -c acoupi -n "__fish_acoupi_using_subcommand task; and not __fish_seen_subcommand_from list run help" -f -a "run" -d 'Run one task in this process, without a broker, and print its result'
complete -c acoupi -n "__fish_acoupi_using_subcommand task; and not __fish_seen_subcommand_from list run help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand task; and __fish_seen_subcommand_from list" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand task; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand task; and __fish_seen_subcommand_from run" -l arg -d 'A positional argument as JSON; repeat for more' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand task; and __fish_seen_subcommand_from run" -l kwargs -d 'Keyword arguments as a JSON object' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand task; and __fish_seen_subcommand_from run" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand task; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the compiled tasks with their queue, schedule and follow-ups'
complete -c acoupi -n "__fish_acoupi_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "run" -d 'Run one task in this process, without a broker, and print its result'
complete -c acoupi -n "__fish_acoupi_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and not __fish_seen_subcommand_from purge start stop restart help" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and not __fish_seen_subcommand_from purge start stop restart help" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and not __fish_seen_subcommand_from purge start stop restart help" -f -a "purge" -d 'Delete the queued tasks of this program\'s queues'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and not __fish_seen_subcommand_from purge start stop restart help" -f -a "start" -d 'Start the worker units'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and not __fish_seen_subcommand_from purge start stop restart help" -f -a "stop" -d 'Stop the worker units'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and not __fish_seen_subcommand_from purge start stop restart help" -f -a "restart" -d 'Restart the worker units'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and not __fish_seen_subcommand_from purge start stop restart help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and __fish_seen_subcommand_from purge" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and __fish_seen_subcommand_from purge" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and __fish_seen_subcommand_from start" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and __fish_seen_subcommand_from start" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and __fish_seen_subcommand_from stop" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and __fish_seen_subcommand_from stop" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and __fish_seen_subcommand_from restart" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and __fish_seen_subcommand_from restart" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and __fish_seen_subcommand_from help" -f -a "purge" -d 'Delete the queued tasks of this program\'s queues'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and __fish_seen_subcommand_from help" -f -a "start" -d 'Start the worker units'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and __fish_seen_subcommand_from help" -f -a "stop" -d 'Stop the worker units'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and __fish_seen_subcommand_from help" -f -a "restart" -d 'Restart the worker units'
complete -c acoupi -n "__fish_acoupi_using_subcommand workers; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and not __fish_seen_subcommand_from queue detect beat help" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and not __fish_seen_subcommand_from queue detect beat help" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and not __fish_seen_subcommand_from queue detect beat help" -f -a "queue" -d 'Publish no-op tasks to a scratch queue and drain them through the real worker'
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and not __fish_seen_subcommand_from queue detect beat help" -f -a "detect" -d 'Time the home\'s detectors on WAV files: start-up, memory with the model loaded, and the median time per file'
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and not __fish_seen_subcommand_from queue detect beat help" -f -a "beat" -d 'Run beat on the real clock with in-process queues and report how late each slot fired'
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and not __fish_seen_subcommand_from queue detect beat help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from queue" -l tasks -d 'Number of tasks' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from queue" -l concurrency -d 'Tasks run at once by the worker' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from queue" -l prefetch -d 'Unacknowledged deliveries held at once [default: the concurrency]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from queue" -l broker -d 'The AMQP URL [default: the built program\'s broker, else amqp://127.0.0.1:5672/%2f]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from queue" -l latency-tasks -d 'Number of tasks for the latency measurement' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from queue" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from queue" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from detect" -l detector -d 'Only this detector (all of the program\'s detectors when absent)' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from detect" -l runs -d 'Analyses of each file after the first request' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from detect" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from detect" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from beat" -l slots -d 'Slots to measure' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from beat" -l every-ms -d 'Slot length in milliseconds' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from beat" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from beat" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "queue" -d 'Publish no-op tasks to a scratch queue and drain them through the real worker'
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "detect" -d 'Time the home\'s detectors on WAV files: start-up, memory with the model loaded, and the median time per file'
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "beat" -d 'Run beat on the real clock with in-process queues and report how late each slot fired'
complete -c acoupi -n "__fish_acoupi_using_subcommand bench; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand devices" -l format -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document on stdout'"
complete -c acoupi -n "__fish_acoupi_using_subcommand devices" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand devices" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c acoupi -n "__fish_acoupi_using_subcommand deploy" -l name -d 'A name for this deployment [default: the program\'s name]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand deploy" -l latitude -d 'Latitude of the deployment [default: the program\'s location]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand deploy" -l longitude -d 'Longitude of the deployment [default: the program\'s location]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand deploy" -l sandbox -d 'The units\' sandbox: `reduced` turns off the options that need namespaces, for machines that cannot give them (most containers)' -r -f -a "full\t'The units as built: file system, user, device and kernel isolation through namespaces, and every other restriction'
reduced\t'Without the options that need namespaces (for containers and kernels without user namespaces); the system call, capability and address family restrictions stay'"
complete -c acoupi -n "__fish_acoupi_using_subcommand deploy" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand deploy" -l check -d 'Only run the preflight (secrets, broker, binary, storage, lingering, sandbox) and report every problem found; exit 1 when one would make a unit fail. Changes nothing'
complete -c acoupi -n "__fish_acoupi_using_subcommand deploy" -l replace-python-acoupi -d 'First stop and disable the Python acoupi\'s units (`acoupi.service`, `acoupi-beat.service`) and move them aside, after confirming; they are put back when the deploy fails'
complete -c acoupi -n "__fish_acoupi_using_subcommand deploy" -l yes -d 'Do not ask before replacing the Python acoupi\'s units (for scripts)'
complete -c acoupi -n "__fish_acoupi_using_subcommand deploy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c acoupi -n "__fish_acoupi_using_subcommand status" -l format -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document on stdout'"
complete -c acoupi -n "__fish_acoupi_using_subcommand status" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c acoupi -n "__fish_acoupi_using_subcommand stop" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand stop" -l purge -d 'Also delete the tasks still queued'
complete -c acoupi -n "__fish_acoupi_using_subcommand stop" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand logs" -s n -l lines -d 'How many of the last lines to print (per log file; from the journal, in all)' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand logs" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand logs" -s f -l follow -d 'Keep printing lines as they are logged, until interrupted'
complete -c acoupi -n "__fish_acoupi_using_subcommand logs" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand init" -l template -d 'Start from this example (`default`, `connected`, `detection`, `quickstart`)' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand init" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand init" -l no-prompt -d 'Do not ask anything (needs --template)'
complete -c acoupi -n "__fish_acoupi_using_subcommand init" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and not __fish_seen_subcommand_from show get set unset help" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and not __fish_seen_subcommand_from show get set unset help" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and not __fish_seen_subcommand_from show get set unset help" -f -a "show" -d 'Print the resolved configuration, or one value by dotted path (secrets masked)'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and not __fish_seen_subcommand_from show get set unset help" -f -a "get" -d 'Print values of the manifest by the paths `config set` takes (secrets masked)'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and not __fish_seen_subcommand_from show get set unset help" -f -a "set" -d 'Set a value of the manifest in place, check it, rebuild the home and apply it'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and not __fish_seen_subcommand_from show get set unset help" -f -a "unset" -d 'Remove an entry of the manifest, check it, rebuild the home and apply it'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and not __fish_seen_subcommand_from show get set unset help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from show" -l format -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document on stdout'"
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from show" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from get" -l manifest -d 'Read this manifest instead of the one the home was built from' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from get" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from set" -l manifest -d 'Edit this manifest only (no home is rebuilt) instead of the one the home was built from' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from set" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from set" -l dry-run -d 'Print the change as a unified diff and write nothing'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from set" -l no-apply -d 'Rebuild the home but leave the running units as they are'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from unset" -l manifest -d 'Edit this manifest only (no home is rebuilt) instead of the one the home was built from' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from unset" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from unset" -l dry-run -d 'Print the change as a unified diff and write nothing'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from unset" -l no-apply -d 'Rebuild the home but leave the running units as they are'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from unset" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print the resolved configuration, or one value by dotted path (secrets masked)'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "get" -d 'Print values of the manifest by the paths `config set` takes (secrets masked)'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "set" -d 'Set a value of the manifest in place, check it, rebuild the home and apply it'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "unset" -d 'Remove an entry of the manifest, check it, rebuild the home and apply it'
complete -c acoupi -n "__fish_acoupi_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and not __fish_seen_subcommand_from recordings outputs detections info help" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and not __fish_seen_subcommand_from recordings outputs detections info help" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and not __fish_seen_subcommand_from recordings outputs detections info help" -f -a "recordings" -d 'Recordings by start time, newest first'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and not __fish_seen_subcommand_from recordings outputs detections info help" -f -a "outputs" -d 'Model outputs (with their recording and detections) by creation time, newest first'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and not __fish_seen_subcommand_from recordings outputs detections info help" -f -a "detections" -d 'Detections by their model output\'s creation time, newest first'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and not __fish_seen_subcommand_from recordings outputs detections info help" -f -a "info" -d 'The store\'s path, schema versions, size, row counts and integrity check'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and not __fish_seen_subcommand_from recordings outputs detections info help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from recordings" -l since -d 'Only rows at or after this time: RFC 3339 (`2024-05-01T21:00:00Z`, `…+01:00`), or a date (`2024-05-01`, its midnight UTC)' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from recordings" -l until -d 'Only rows before this time (same forms as --since)' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from recordings" -l min-score -d 'Only detections scoring at least this (0 to 1), and what they belong to' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from recordings" -l tag -d 'Only detections with this tag, e.g. `species=Myotis`, and what they belong to' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from recordings" -l detector -d 'Only the outputs of the detector (model) with this name' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from recordings" -l limit -d 'At most this many rows, the newest' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from recordings" -l format -d 'Output format' -r -f -a "table\t'Aligned columns, for people'
json\t'One JSON array on stdout, rows in acoupi\'s field names'
csv\t'Comma-separated values with a header line'"
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from recordings" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from recordings" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from outputs" -l since -d 'Only rows at or after this time: RFC 3339 (`2024-05-01T21:00:00Z`, `…+01:00`), or a date (`2024-05-01`, its midnight UTC)' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from outputs" -l until -d 'Only rows before this time (same forms as --since)' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from outputs" -l min-score -d 'Only detections scoring at least this (0 to 1), and what they belong to' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from outputs" -l tag -d 'Only detections with this tag, e.g. `species=Myotis`, and what they belong to' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from outputs" -l detector -d 'Only the outputs of the detector (model) with this name' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from outputs" -l limit -d 'At most this many rows, the newest' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from outputs" -l format -d 'Output format' -r -f -a "table\t'Aligned columns, for people'
json\t'One JSON array on stdout, rows in acoupi\'s field names'
csv\t'Comma-separated values with a header line'"
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from outputs" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from outputs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from detections" -l since -d 'Only rows at or after this time: RFC 3339 (`2024-05-01T21:00:00Z`, `…+01:00`), or a date (`2024-05-01`, its midnight UTC)' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from detections" -l until -d 'Only rows before this time (same forms as --since)' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from detections" -l min-score -d 'Only detections scoring at least this (0 to 1), and what they belong to' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from detections" -l tag -d 'Only detections with this tag, e.g. `species=Myotis`, and what they belong to' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from detections" -l detector -d 'Only the outputs of the detector (model) with this name' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from detections" -l limit -d 'At most this many rows, the newest' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from detections" -l format -d 'Output format' -r -f -a "table\t'Aligned columns, for people'
json\t'One JSON array on stdout, rows in acoupi\'s field names'
csv\t'Comma-separated values with a header line'"
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from detections" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from detections" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from info" -l format -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document on stdout'"
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from info" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from info" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from help" -f -a "recordings" -d 'Recordings by start time, newest first'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from help" -f -a "outputs" -d 'Model outputs (with their recording and detections) by creation time, newest first'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from help" -f -a "detections" -d 'Detections by their model output\'s creation time, newest first'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from help" -f -a "info" -d 'The store\'s path, schema versions, size, row counts and integrity check'
complete -c acoupi -n "__fish_acoupi_using_subcommand db; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand detect" -l detector -d 'Only this detector (all of the program\'s detectors when absent)' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand detect" -l format -d 'Output format' -r -f -a "table\t'A line per file and detector, then one per detection'
json\t'One acoupi `ModelOutput` JSON object per line, per file and detector'"
complete -c acoupi -n "__fish_acoupi_using_subcommand detect" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand detect" -l store -d 'Also write the recordings and model outputs to the metadata store'
complete -c acoupi -n "__fish_acoupi_using_subcommand detect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c acoupi -n "__fish_acoupi_using_subcommand import" -s o -l output -d 'Where to write the manifest' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand import" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand import" -l force -d 'Overwrite FILE when it exists'
complete -c acoupi -n "__fish_acoupi_using_subcommand import" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand completions" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c acoupi -n "__fish_acoupi_using_subcommand models; and not __fish_seen_subcommand_from install help" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand models; and not __fish_seen_subcommand_from install help" -s h -l help -d 'Print help'
complete -c acoupi -n "__fish_acoupi_using_subcommand models; and not __fish_seen_subcommand_from install help" -f -a "install" -d 'Fetch a model\'s published package, take its model file out, verify and install it'
complete -c acoupi -n "__fish_acoupi_using_subcommand models; and not __fish_seen_subcommand_from install help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand models; and __fish_seen_subcommand_from install" -l dir -d 'Install into this folder [default: ${XDG_DATA_HOME:-~/.local/share}/acoupi/models/MODEL]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand models; and __fish_seen_subcommand_from install" -l python -d 'The Python whose pip downloads the package' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand models; and __fish_seen_subcommand_from install" -l home -d 'The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]' -r
complete -c acoupi -n "__fish_acoupi_using_subcommand models; and __fish_seen_subcommand_from install" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c acoupi -n "__fish_acoupi_using_subcommand models; and __fish_seen_subcommand_from help" -f -a "install" -d 'Fetch a model\'s published package, take its model file out, verify and install it'
complete -c acoupi -n "__fish_acoupi_using_subcommand models; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "check" -d 'Validate a manifest and report every problem; needs no hardware, broker or writes'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "build" -d 'Compile a manifest into ACOUPI_HOME (atomically; runtime state is kept)'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "worker" -d 'Run one worker of the built program: consume its queues until SIGTERM'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "beat" -d 'Run the scheduler: publish each scheduled task at its wall-clock slot'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "run" -d 'Run beat and every worker in the foreground (building the manifest first, if given)'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "task" -d 'List or run the program\'s tasks'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "workers" -d 'Manage the program\'s queues'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "bench" -d 'Benchmarks that print figures'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "devices" -d 'List audio input devices with their channels and sample rates'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "deploy" -d 'Install and start the built home\'s systemd user units'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "status" -d 'Report the deployment\'s health: units, workers, queues, storage (never opens the microphone)'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "stop" -d 'Stop and disable the units, let workers drain, end the deployment'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "logs" -d 'Show the services\' last log lines (journal, else the files under `log/`)'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "init" -d 'Write a new manifest, step by step (or from an example with --no-prompt)'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "config" -d 'Show the built configuration, or read and change the manifest by dotted path'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "db" -d 'Read the metadata store: recordings, model outputs, detections, or its health'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "detect" -d 'Run the home\'s detectors on WAV files or folders, without a broker'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "import" -d 'Write a manifest equivalent to a home of the Python acoupi (its `default` or `connected` program, or acoupi-batdetect2\'s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "models" -d 'Install the model files of acoupi\'s built-in detectors'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and not __fish_seen_subcommand_from check build worker beat run task workers bench devices deploy status stop logs init config db detect import completions models help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "list" -d 'List the compiled tasks with their queue, schedule and follow-ups'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "run" -d 'Run one task in this process, without a broker, and print its result'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from workers" -f -a "purge" -d 'Delete the queued tasks of this program\'s queues'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from workers" -f -a "start" -d 'Start the worker units'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from workers" -f -a "stop" -d 'Stop the worker units'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from workers" -f -a "restart" -d 'Restart the worker units'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "queue" -d 'Publish no-op tasks to a scratch queue and drain them through the real worker'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "detect" -d 'Time the home\'s detectors on WAV files: start-up, memory with the model loaded, and the median time per file'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from bench" -f -a "beat" -d 'Run beat on the real clock with in-process queues and report how late each slot fired'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "show" -d 'Print the resolved configuration, or one value by dotted path (secrets masked)'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "get" -d 'Print values of the manifest by the paths `config set` takes (secrets masked)'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "set" -d 'Set a value of the manifest in place, check it, rebuild the home and apply it'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "unset" -d 'Remove an entry of the manifest, check it, rebuild the home and apply it'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from db" -f -a "recordings" -d 'Recordings by start time, newest first'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from db" -f -a "outputs" -d 'Model outputs (with their recording and detections) by creation time, newest first'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from db" -f -a "detections" -d 'Detections by their model output\'s creation time, newest first'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from db" -f -a "info" -d 'The store\'s path, schema versions, size, row counts and integrity check'
complete -c acoupi -n "__fish_acoupi_using_subcommand help; and __fish_seen_subcommand_from models" -f -a "install" -d 'Fetch a model\'s published package, take its model file out, verify and install it'
