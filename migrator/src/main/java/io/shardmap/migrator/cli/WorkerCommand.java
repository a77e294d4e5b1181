package io.shardmap.migrator.cli;

import io.shardmap.migrator.internal.States;
import io.shardmap.support.cli.Durations;
import io.shardmap.support.cli.ExitCode;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Level;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(
    name = "worker",
    description = {
      "Run as a worker, driving recorded migrations, until SIGTERM or SIGINT.",
      "Drives every migration that has not ended and that no other worker holds (those recorded with",
      "'move --detach', and those a crashed worker left behind once its lease expires), up to --parallel",
      "at once; a migration whose step fails is retried after --retry-delay.",
      "The first SIGTERM/SIGINT stops claiming migrations; each drive in progress finishes its current step",
      "and hands its migration back, for up to --drain-timeout; a second one quits at once (held migrations",
      "are then taken over when their leases expire). Logs go to stderr."
    },
    footer = {
      "",
      "Exit codes: 0 stopped by a signal; 2 usage; 5 UNAVAILABLE (etcd unreachable at start); 1 anything else."
    })
final class WorkerCommand extends Cmd {
  @Option(names = "--parallel", paramLabel = "N", defaultValue = "4",
      description = "Migrations driven at once, 1 to 64 (default 4).")
  int parallel;

  @Option(names = "--retry-delay", paramLabel = "DURATION", converter = Durations.Positive.class,
      defaultValue = "30s", description = "Wait before retrying a migration whose step failed (default 30s).")
  Duration retryDelay;

  @Option(names = "--drain-timeout", paramLabel = "DURATION", converter = Durations.Positive.class,
      defaultValue = "15s", description = "After a stop signal, how long the drives in progress may take to finish "
          + "their step and hand their migrations back (default 15s).")
  Duration drainTimeout;

  @Override
  int execute(MigratorCli cli) {
    if (parallel < 1 || parallel > 64) {
      throw usage("invalid value for option '--parallel': must be 1 to 64, got " + parallel);
    }
    if (MigratorCli.SHARDMAP_LOGGER.getLevel() == Level.WARNING) {
      MigratorCli.SHARDMAP_LOGGER.setLevel(null); // a worker's log is its output: migrations ended, failed, retried
    }
    String name = options().workerName();
    // Reach etcd once before announcing the worker: a wrong endpoint fails here (exit 5), not in a log line.
    int unfinished = (int) migrator().list().stream()
        .filter(m -> !States.terminal(m.getState())).count();
    AtomicInteger signal = new AtomicInteger();
    cli.err.println("worker " + name + ": driving up to " + parallel + " migrations at once (" + unfinished
        + " not ended now); SIGTERM or Ctrl-C stops it");
    cli.err.flush();
    Signals.Handle handle = cli.signals.onStop(s -> {
      signal.set(s);
      cli.err.println("worker " + name + ": " + Follow.signalName(s) + ": stopping (no new migrations are claimed; "
          + Follow.signalName(s) + " again quits at once)");
      cli.err.flush();
    });
    List<String> held;
    try {
      held = migrator().runWorker(() -> signal.get() != 0, parallel, retryDelay, drainTimeout);
    } finally {
      handle.close();
    }
    if (!held.isEmpty()) {
      cli.err.println("worker " + name + ": still driving after " + Durations.format(drainTimeout) + ": "
          + String.join(", ", held) + " (interrupted; taken over by another worker or 'migrator resume ID' once "
          + "the lease expires)");
    }
    cli.err.println("worker " + name + ": stopped");
    return ExitCode.OK.code();
  }
}
